package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quotabar/quotabar/internal/testenv"
)

const pythonConfig = `
[proxy]
enabled = false

[services.py]
limits = ["1000 requests/1m", "100000 tokens/1m"]

[services.one]
limits = ["1 requests/1h"]

[services.cool]
limits = ["1000 requests/1m"]
`

// TestPythonClient runs clients/python's unittest suite with python3
// against a real daemon.
func TestPythonClient(t *testing.T) {
	python := testenv.LookPath(t, "python3")
	e := newEnv(t)
	e.writeConfigFile(t, pythonConfig)
	e.serve(t)
	cmd := exec.Command(python, "-m", "unittest", "-v", "test_quotabar")
	cmd.Dir = filepath.Join("clients", "python")
	cmd.Env = append(e.environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "OK") || strings.Contains(string(out), "Ran 0 tests") {
		t.Fatalf("python3 -m unittest ran nothing:\n%s", out)
	}
	t.Logf("%s", out)
}
