package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeModule writes a module of the given files into a new directory.
func writeModule(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files["go.mod"] = "module example.com/m\n\ngo 1.26\n"
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A module whose darwin files use cgo and differ by architecture, all
// correct.
func cleanFiles() map[string]string {
	return map[string]string{
		"m.go": "package m\n\nfunc Common() int { return 1 }\n",
		"x_linux.go": `package m

func onLinux() int { return Common() }
`,
		"x_darwin.go": `package m

/*
static int answer(void) { return 42; }
*/
import "C"

import (
	"fmt"
	"syscall"
)

func onMac() string { return fmt.Sprint(int(C.answer())+Common(), archName) }

// Kqueue exists only in darwin's (and the BSDs') syscall package.
func kq() (int, error) { return syscall.Kqueue() }
`,
		"x_darwin_arm64.go": "package m\n\nconst archName = \"arm64\"\n",
		"x_darwin_amd64.go": "package m\n\nconst archName = \"amd64\"\n",
		"sub/sub_test.go": `package sub

import (
	"testing"

	"example.com/m"
)

func TestCommon(t *testing.T) { _ = m.Common() }
`,
	}
}

func TestCheckClean(t *testing.T) {
	t.Setenv("GOWORK", "off")
	dir := writeModule(t, cleanFiles())
	for _, arch := range []string{"arm64", "amd64"} {
		t.Run(arch, func(t *testing.T) {
			res, err := check(config{Dir: dir, GOARCH: arch, Tests: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Problems) > 0 {
				t.Errorf("problems in a clean module:\n%s", strings.Join(res.Problems, "\n"))
			}
			// m, its test variant (same files, no tests of its own) and
			// sub's test package; fmt and the runtime among the deps.
			if !slices.Contains(res.Cgo, "example.com/m") {
				t.Errorf("the cgo package was not checked; cgo packages: %q", res.Cgo)
			}
			if res.Own < 2 || res.Deps < 10 {
				t.Errorf("checked %d own packages and %d dependencies; the module and its imports were not all seen", res.Own, res.Deps)
			}
		})
	}
}

func TestCheckFindsDarwinOnlyErrors(t *testing.T) {
	t.Setenv("GOWORK", "off")
	tests := []struct {
		name  string
		file  string // added to the clean module
		text  string
		archs map[string]bool // where the error must be found
		want  string
	}{{
		name:  "type error in a darwin file",
		file:  "bad_darwin.go",
		text:  "package m\n\nfunc bad() int {\n\tvar s string = Common()\n\treturn len(s)\n}\n",
		archs: map[string]bool{"arm64": true, "amd64": true},
		want:  "bad_darwin.go:4:17: cannot use Common() (value of type int) as string value in variable declaration",
	}, {
		name:  "undefined name in an amd64-only file",
		file:  "bad_darwin_amd64.go",
		text:  "package m\n\nvar _ = notDefined\n",
		archs: map[string]bool{"amd64": true},
		want:  "bad_darwin_amd64.go:3:9: undefined: notDefined",
	}, {
		name:  "wrong call in a darwin test",
		file:  "sub/sub_darwin_test.go",
		text:  "package sub\n\nimport (\n\t\"testing\"\n\n\t\"example.com/m\"\n)\n\nfunc TestMac(t *testing.T) { m.Common(1) }\n",
		archs: map[string]bool{"arm64": true, "amd64": true},
		want:  "sub/sub_darwin_test.go:9:39: too many arguments in call to m.Common",
	}, {
		name:  "syntax error in a cgo file",
		file:  "cgo_darwin.go",
		text:  "package m\n\n// int f(void);\nimport \"C\"\n\nfunc f() { C.f( }\n",
		archs: map[string]bool{"arm64": true, "amd64": true},
		want:  "cgo_darwin.go:6:17: expected operand",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := cleanFiles()
			files[tt.file] = tt.text
			dir := writeModule(t, files)
			// The host's own build does not see the file, which is the
			// reason for the checker.
			if out, err := exec.Command("go", "vet", "-C", dir, "./...").CombinedOutput(); err != nil {
				t.Fatalf("go vet on %s fails, so the file is not darwin-only: %v\n%s", filepath.Base(dir), err, out)
			}
			for _, arch := range []string{"arm64", "amd64"} {
				res, err := check(config{Dir: dir, GOARCH: arch, Tests: true})
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, p := range res.Problems {
					found = found || strings.Contains(p, tt.want)
				}
				if found != tt.archs[arch] {
					t.Errorf("darwin/%s: found %q = %v, want %v; problems:\n%s", arch, tt.want, found, tt.archs[arch], strings.Join(res.Problems, "\n"))
				}
			}
		})
	}
}

func TestRun(t *testing.T) {
	t.Setenv("GOWORK", "off")
	bad := cleanFiles()
	bad["bad_darwin.go"] = "package m\n\nvar _ int = \"s\"\n"
	badDir, cleanDir := writeModule(t, bad), writeModule(t, cleanFiles())
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string
		stderrPart string
	}{
		{"clean", []string{"-C", cleanDir, "-goarch", "amd64"}, 0, "", "darwin/amd64: 2 packages of this module checked fully"},
		{"bad", []string{"-C", badDir}, 1, "bad_darwin.go:3:13: cannot use \"s\" (untyped string constant) as int value in variable declaration\n", "1 problems"},
		{"no tests", []string{"-C", cleanDir, "-tests=false"}, 0, "", "darwin/arm64: 1 packages of this module"},
		{"bad arch", []string{"-C", cleanDir, "-goarch", "sparc"}, 2, "", `GOARCH "sparc" is not one the gc compiler knows`},
		{"no match", []string{"-C", cleanDir, "./nothing/..."}, 2, "", "no packages for darwin match ./nothing/..."},
		{"bad flag", []string{"-nope"}, 2, "", "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code || stdout.String() != tt.stdout || !strings.Contains(stderr.String(), tt.stderrPart) {
				t.Errorf("run(%q) = %d\nstdout: %q\nstderr: %q\nwant %d, stdout %q, stderr containing %q",
					tt.args, code, stdout.String(), stderr.String(), tt.code, tt.stdout, tt.stderrPart)
			}
		})
	}
}

// The real module, including fyne.io/systray's cgo files, checks clean.
func TestCheckThisModule(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks the whole module and its dependencies")
	}
	for _, arch := range []string{"arm64", "amd64"} {
		t.Run(arch, func(t *testing.T) {
			res, err := check(config{Dir: "../..", GOARCH: arch, Tests: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Problems) > 0 {
				t.Errorf("darwin/%s:\n%s", arch, strings.Join(res.Problems, "\n"))
			}
			if res.Own == 0 {
				t.Error("no package of this module was checked")
			}
			if !slices.Contains(res.Cgo, "fyne.io/systray") {
				t.Errorf("fyne.io/systray is not among the cgo packages checked: %q", res.Cgo)
			}
		})
	}
}
