package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// NPMDir returns the directory whose node_modules holds the npm packages
// `./build.sh test` installs at pinned versions (install_npm_packages:
// $QUOTABAR_NPM_DIR, else ~/.cache/quotabar-npm/current), after checking
// that node and each of pkgs (package names, e.g. "playwright-core") are
// there. When they are not the test is skipped, or failed when tools are
// required.
func NPMDir(t testing.TB, pkgs ...string) string {
	t.Helper()
	LookPath(t, "node")
	dir := os.Getenv("QUOTABAR_NPM_DIR")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "quotabar-npm", "current")
	}
	for _, p := range pkgs {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p, "package.json")); err != nil {
			Missing(t, "npm package %s is not installed in %s (%v); ./build.sh test installs it", p, dir, err)
		}
	}
	return dir
}
