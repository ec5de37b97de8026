package main

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"golang.org/x/tools/go/packages"
)

// config says what to check.
type config struct {
	Dir      string   // the module (or a directory in it) to check
	GOARCH   string   // "arm64" or "amd64"
	Patterns []string // package patterns; none means "./..."
	Tests    bool     // also check _test.go files
}

// result is what a check found.
type result struct {
	Own, Deps int      // packages checked fully, and without function bodies
	Skipped   []string // packages with no file for darwin, with why
	Cgo       []string // packages checked that have cgo files
	Problems  []string // "file:line:col: message", sorted
}

// maxPerPackage bounds the problems reported for one package: after that
// many, the rest are mostly consequences of the first.
const maxPerPackage = 20

// check lists the packages matched by cfg.Patterns, and all their
// dependencies, as the go command sees them for GOOS=darwin with cgo on.
// Only names, files and imports are asked of go list, so no C compiler runs
// (compiled files would need cgo's output for darwin). It then type-checks
// every package from source in dependency order with go/types and
// FakeImportC, which lets cgo files be checked without cgo: references to
// C.x are accepted unchecked. The module's own packages are checked fully;
// dependencies only their declarations (IgnoreFuncBodies), which is all
// their importers need and which skips the bodies full of C calls in cgo
// dependencies such as fyne.io/systray. The returned error is for a check
// that could not run at all; what it found is in the result.
func check(cfg config) (result, error) {
	var res result
	if cfg.GOARCH == "" {
		return res, errors.New("GOARCH is empty; use arm64 or amd64")
	}
	patterns := cfg.Patterns
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	sizes := types.SizesFor("gc", cfg.GOARCH)
	if sizes == nil {
		return res, fmt.Errorf("GOARCH %q is not one the gc compiler knows; use arm64 or amd64", cfg.GOARCH)
	}
	env := append(os.Environ(), "GOOS=darwin", "GOARCH="+cfg.GOARCH, "CGO_ENABLED=1")
	pkgs, err := packages.Load(&packages.Config{
		Mode:  packages.NeedName | packages.NeedFiles | packages.NeedImports | packages.NeedDeps | packages.NeedModule,
		Dir:   cfg.Dir,
		Env:   env,
		Tests: cfg.Tests,
	}, patterns...)
	if err != nil {
		return res, fmt.Errorf("listing packages for darwin/%s: %w", cfg.GOARCH, err)
	}
	if len(pkgs) == 0 {
		return res, fmt.Errorf("no packages match %s in %s", strings.Join(patterns, " "), cfg.Dir)
	}

	var order []*packages.Package // dependencies first
	packages.Visit(pkgs, nil, func(p *packages.Package) { order = append(order, p) })

	fset := token.NewFileSet()
	checked := map[string]*types.Package{} // by package ID
	rel := relativeTo(cfg.Dir)
	for _, p := range order {
		if strings.HasSuffix(p.ID, ".test") {
			continue // the generated test main: nothing of ours in it
		}
		if len(p.GoFiles) == 0 {
			// A package built only on other systems, such as a _linux.go
			// only one: go build skips it for darwin, so do we.
			why := "no Go files for darwin"
			if len(p.Errors) > 0 {
				why = p.Errors[0].Msg
			}
			res.Skipped = append(res.Skipped, p.PkgPath+": "+why)
			continue
		}
		var problems []string
		report := func(msg string) {
			if len(problems) < maxPerPackage {
				problems = append(problems, msg)
			} else if len(problems) == maxPerPackage {
				problems = append(problems, fmt.Sprintf("%s: more problems not shown", p.ID))
			}
		}
		for _, e := range p.Errors {
			report(rel(e.Error()))
		}
		own := p.Module != nil && p.Module.Main
		files, parseErrs := parseFiles(fset, p.GoFiles)
		for _, e := range parseErrs {
			report(rel(e))
		}
		conf := types.Config{
			Importer:         importerFor(p, checked),
			FakeImportC:      true,
			IgnoreFuncBodies: !own,
			Sizes:            sizes,
			Error: func(err error) {
				var te types.Error
				if errors.As(err, &te) && te.Soft && !own {
					return // unused imports and such in code we do not own
				}
				report(rel(err.Error()))
			},
		}
		if p.Module != nil && p.Module.GoVersion != "" {
			conf.GoVersion = "go" + p.Module.GoVersion
		}
		tp, _ := conf.Check(p.PkgPath, fset, files, nil) // errors went to conf.Error
		checked[p.ID] = tp
		if usesCgo(files) && !slices.Contains(res.Cgo, p.PkgPath) {
			res.Cgo = append(res.Cgo, p.PkgPath)
		}
		if own {
			res.Own++
		} else {
			res.Deps++
		}
		res.Problems = append(res.Problems, problems...)
	}
	if res.Own+res.Deps == 0 {
		return res, fmt.Errorf("no packages for darwin match %s in %s: %s", strings.Join(patterns, " "), cfg.Dir, strings.Join(res.Skipped, "; "))
	}
	// A package and its test variant share files, and so problems.
	slices.Sort(res.Problems)
	res.Problems = slices.Compact(res.Problems)
	return res, nil
}

// parseFiles parses the files of one package, in parallel, in their order.
func parseFiles(fset *token.FileSet, names []string) ([]*ast.File, []string) {
	files := make([]*ast.File, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			// Comments are kept: //go:build lines set a file's Go version.
			files[i], errs[i] = parser.ParseFile(fset, name, nil, parser.ParseComments|parser.SkipObjectResolution)
		}()
	}
	wg.Wait()
	var msgs []string
	var ok []*ast.File
	for i, f := range files {
		var list scanner.ErrorList
		switch {
		case errors.As(errs[i], &list):
			for _, e := range list {
				msgs = append(msgs, e.Error())
			}
		case errs[i] != nil:
			msgs = append(msgs, errs[i].Error())
		}
		if f != nil {
			ok = append(ok, f)
		}
	}
	return ok, msgs
}

func usesCgo(files []*ast.File) bool {
	for _, f := range files {
		for _, imp := range f.Imports {
			if imp.Path.Value == `"C"` {
				return true
			}
		}
	}
	return false
}

type importerFunc func(path string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }

// importerFor resolves p's imports to the packages already checked, through
// p.Imports, which maps each import path as written to the package the go
// command chose (vendored, or the test variant).
func importerFor(p *packages.Package, checked map[string]*types.Package) types.Importer {
	return importerFunc(func(path string) (*types.Package, error) {
		if path == "unsafe" {
			return types.Unsafe, nil
		}
		dep := p.Imports[path]
		if dep == nil {
			return nil, fmt.Errorf("go list did not list import %q (was the file changed during the check?)", path)
		}
		if tp := checked[dep.ID]; tp != nil {
			return tp, nil
		}
		return nil, fmt.Errorf("%s has no Go files for darwin", dep.ID)
	})
}

// relativeTo returns a function that shortens the absolute file names under
// dir at the start of a message, so that reports read like the go command's.
func relativeTo(dir string) func(string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return func(s string) string { return s }
	}
	prefix := abs + string(filepath.Separator)
	return func(s string) string { return strings.TrimPrefix(s, prefix) }
}
