//go:build !linux

package webfallback

import (
	"fmt"
	"os"
	"testing"
)

// fakeDriverMain and nsSelftestMain run the namespace test's children,
// which exist on Linux only.
func fakeDriverMain([]string) int {
	fmt.Fprintln(os.Stderr, "the namespace test runs on Linux only")
	return 1
}

func nsSelftestMain(string, string) int { return fakeDriverMain(nil) }

func namespacePorts(t *testing.T, _ int) []int {
	t.Fatal("network namespaces are Linux's")
	return nil
}
