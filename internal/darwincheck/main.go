// Command darwincheck type-checks the module's macOS code on any system, so
// that a mistake in a _darwin.go file (the LaunchAgent, purego calls, the
// systray binding) fails `./build.sh test` on Linux instead of the next build
// on a Mac.
//
//	go run ./internal/darwincheck [-goarch arm64] [-tests=false] [packages]
//
// It needs no C compiler and no macOS SDK: see check for how. It prints each
// problem as file:line:col: message and exits 1 when there is any, 2 when it
// cannot run.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("darwincheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	goarch := fs.String("goarch", "arm64", "darwin architecture to check: arm64 or amd64")
	tests := fs.Bool("tests", true, "also check _test.go files")
	dir := fs.String("C", ".", "run in this directory")
	verbose := fs.Bool("v", false, "also list the packages skipped for having no darwin files")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	res, err := check(config{Dir: *dir, GOARCH: *goarch, Patterns: fs.Args(), Tests: *tests})
	if err != nil {
		fmt.Fprintf(stderr, "darwincheck: %v\n", err)
		return 2
	}
	for _, p := range res.Problems {
		fmt.Fprintln(stdout, p)
	}
	if *verbose {
		for _, s := range res.Skipped {
			fmt.Fprintf(stderr, "darwincheck: skipped %s\n", s)
		}
	}
	fmt.Fprintf(stderr, "darwincheck: darwin/%s: %d packages of this module checked fully, %d dependencies by their declarations, %d skipped, %d problems\n",
		*goarch, res.Own, res.Deps, len(res.Skipped), len(res.Problems))
	if len(res.Problems) > 0 {
		return 1
	}
	return 0
}
