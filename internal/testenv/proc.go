package testenv

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ProcessesNaming returns the processes whose command line contains s (a
// browser's profile directory, say), each as "pid: command line". It reads
// /proc, so it finds nothing outside Linux.
func ProcessesNaming(s string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}
