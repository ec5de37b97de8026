package daemon

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/quotabar/quotabar/app/config"
	"github.com/quotabar/quotabar/limiter"
)

func TestStateSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, StateFile)

	st, err := LoadState(path)
	if err != nil || st.Fallback != nil {
		t.Fatalf("missing file: %+v, %v; want empty state and no error", st, err)
	}

	want := SavedState{Fallback: map[string]bool{"openai": true, "anthropic": false}}
	if err := SaveState(path, want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("loaded %+v, want %+v", got, want)
	}

	// Saving again replaces the file and leaves no temporary file behind.
	want.Fallback["openai"] = false
	if err := SaveState(path, want); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != StateFile {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("state dir holds %v, want only %s", names, StateFile)
	}
	if got, _ := LoadState(path); got.Fallback["openai"] {
		t.Error("second save not read back")
	}
}

func TestStateCorruptMovedAside(t *testing.T) {
	for name, content := range map[string]string{
		"truncated":  `{"limiter": {`,
		"not json":   "\x00\x01garbage",
		"wrong type": `{"fallback": {"openai": "yes"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, StateFile)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := LoadState(path)
			if err == nil {
				t.Fatalf("corrupt state loaded as %+v", st)
			}
			if !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), StateFile+".bad-") {
				t.Errorf("error %q does not say the file is corrupt and where it went", err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("the corrupt file is still at %s", path)
			}
			bad, _ := filepath.Glob(path + ".bad-*")
			if len(bad) != 1 {
				t.Fatalf("moved-aside files: %v, want one", bad)
			}
			if data, _ := os.ReadFile(bad[0]); string(data) != content {
				t.Errorf("moved-aside file holds %q, want the original %q", data, content)
			}
		})
	}
}

func TestStateSaveFailsInMissingDir(t *testing.T) {
	err := SaveState(filepath.Join(t.TempDir(), "no", "such", StateFile), SavedState{})
	if err == nil || !strings.Contains(err.Error(), "saving state") {
		t.Errorf("SaveState into a missing directory: %v, want a saving-state error", err)
	}
}

// benchState is a saved state of a typical size: four services with learned
// limits and a few agents.
func benchState(b *testing.B) SavedState {
	b.Helper()
	cfg, err := config.Parse("c.toml", config.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	l, err := limiter.New(cfg.Limiter())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return SavedState{Limiter: l.Snapshot(), Fallback: map[string]bool{"openai": true}}
}

// BenchmarkEncodeState is the baseline for BenchmarkSaveState: the cost of
// the JSON alone.
func BenchmarkEncodeState(b *testing.B) {
	st := benchState(b)
	for b.Loop() {
		if _, err := encodeState(st); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSaveState is one atomic save (temp file, fsync, rename, fsync of
// the directory): what the daemon pays at most once per saveDelay.
func BenchmarkSaveState(b *testing.B) {
	st := benchState(b)
	path := filepath.Join(b.TempDir(), StateFile)
	for b.Loop() {
		if err := SaveState(path, st); err != nil {
			b.Fatal(err)
		}
	}
}
