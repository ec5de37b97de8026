package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// StateFile is the name of the saved state in the state directory.
const StateFile = "state.json"

// SavedState is what survives a restart: everything a person changed at run
// time and everything the limiter learned.
type SavedState struct {
	Limiter limiter.State `json:"limiter"`
	// Fallback holds the web-fallback switches flipped at run time, by
	// service; a service not here uses its configured `enabled`.
	Fallback map[string]bool `json:"fallback,omitempty"`
}

// LoadState reads the saved state at path. A missing file is no saved state
// (and no error). A file that does not decode is renamed to
// path.bad-<time> so that the next save does not destroy it; the error says
// where it went.
func LoadState(path string) (SavedState, error) {
	var st SavedState
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("reading saved state: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&st); err != nil {
		return SavedState{}, moveAside(path, fmt.Errorf("saved state %s is corrupt: %w", path, err))
	}
	return st, nil
}

// moveAside renames a bad state file out of the way and returns cause with
// the new name added.
func moveAside(path string, cause error) error {
	bad := path + ".bad-" + time.Now().UTC().Format("20060102T150405Z")
	if err := os.Rename(path, bad); err != nil {
		return fmt.Errorf("%w (and it could not be moved aside: %v)", cause, err)
	}
	return fmt.Errorf("%w; moved it to %s and started without it", cause, bad)
}

// SaveState writes st to path atomically: a crash at any moment leaves
// either the old file or the new one, never a mix.
func SaveState(path string, st SavedState) error {
	data, err := encodeState(st)
	if err != nil {
		return err
	}
	return writeState(path, data)
}

func encodeState(st SavedState) ([]byte, error) {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding saved state: %w", err)
	}
	return append(data, '\n'), nil
}

func writeState(path string, data []byte) error {
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it,
// renames it over path and syncs the directory, so that the rename itself is
// durable.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
