package webfallback

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeOpener puts a shell script named like the platform opener on PATH; it
// records its arguments to a file and exits with code.
func fakeOpener(t *testing.T, code string) (record string) {
	t.Helper()
	dir := t.TempDir()
	record = filepath.Join(dir, "args")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + record + "\necho opener says hi >&2\nexit " + code + "\n"
	if err := os.WriteFile(filepath.Join(dir, systemOpener), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+"/bin:/usr/bin")
	return record
}

func TestSystemOpen(t *testing.T) {
	ctx := openCtx(t)
	const u = "http://127.0.0.1:9/chat?q=a b"
	t.Run("opens the address", func(t *testing.T) {
		record := fakeOpener(t, "0")
		m := New(Options{Dir: t.TempDir()})
		s, err := m.Open(ctx, Target{Service: "svc", Browser: System, URL: u})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if s != (Session{Browser: System, URL: u}) {
			t.Fatalf("Open = %+v, want only browser and url", s)
		}
		got, err := os.ReadFile(record)
		if err != nil {
			t.Fatalf("the opener did not run: %v", err)
		}
		if string(got) != u+"\n" {
			t.Fatalf("opener got %q, want the one argument %q", got, u)
		}
		if n := m.OpenSessions("svc"); n != 0 {
			t.Fatalf("OpenSessions = %d, want 0: the default browser is not ours", n)
		}
	})
	t.Run("opener fails", func(t *testing.T) {
		fakeOpener(t, "3")
		m := New(Options{Dir: t.TempDir()})
		_, err := m.Open(ctx, Target{Service: "svc", Browser: System, URL: u})
		if err == nil || !strings.Contains(err.Error(), "opener says hi") || !strings.Contains(err.Error(), "exit status 3") {
			t.Fatalf("Open = %v, want the opener's exit status and output", err)
		}
	})
	t.Run("no opener", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		m := New(Options{Dir: t.TempDir()})
		_, err := m.Open(ctx, Target{Service: "svc", Browser: System, URL: u})
		ue, ok := errors.AsType[*UnavailableError](err)
		if !ok || !strings.Contains(ue.Error(), systemOpener) || !strings.Contains(ue.Error(), systemOpenerHint) {
			t.Fatalf("Open = %v, want *UnavailableError naming %s and saying %q", err, systemOpener, systemOpenerHint)
		}
	})
}
