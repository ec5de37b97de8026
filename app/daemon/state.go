package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/quotabar/quotabar/internal/atomicfile"
	"github.com/quotabar/quotabar/internal/readfile"
	"github.com/quotabar/quotabar/limiter"
)

// StateFile is the name of the saved state in the state directory.
const StateFile = "state.json"

// MaxStateSize caps the state file read at start-up. A state of 10,000
// agents is about 2 MB; a bigger file is not one quotabar wrote.
const MaxStateSize = 32 << 20

// SavedState is what survives a restart: everything a person changed at run
// time and everything the limiter learned.
type SavedState struct {
	Limiter limiter.State `json:"limiter"`
	// Fallback holds the web-fallback switches flipped at run time, by
	// service; a service not here uses its configured `enabled`.
	Fallback map[string]bool `json:"fallback,omitempty"`
	// Notify is the menu's desktop-notifications switch, absent until it
	// is flipped (then the config's [alerts] notify applies).
	Notify *bool `json:"notify,omitempty"`
}

// ErrTrailingData is wrapped by LoadState's error for a state file with
// something after its JSON value: the file is moved aside, and the state
// before the garbage is returned with the error.
var ErrTrailingData = errors.New("data after the end of the saved state")

// LoadState reads the saved state at path. A missing file is no saved state
// (and no error). A file that is not a regular file, is over MaxStateSize
// or does not decode is renamed to path.bad-<time> so that the next save
// does not destroy it; the error says where it went. A file with garbage
// after a whole state is moved aside the same way, but its state is
// returned along with an error wrapping ErrTrailingData.
func LoadState(path string) (SavedState, error) {
	var st SavedState
	data, err := readfile.Regular(path, MaxStateSize)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if errors.Is(err, readfile.ErrNotRegular) || errors.Is(err, readfile.ErrTooLarge) {
		return st, moveAside(path, fmt.Errorf("saved state not read: %w", err))
	}
	if err != nil {
		return st, fmt.Errorf("reading saved state: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&st); err != nil {
		return SavedState{}, moveAside(path, fmt.Errorf("saved state %s is corrupt: %w", path, err))
	}
	// Decode stops after the first value; what follows must be blanks.
	if _, err := dec.Token(); err != io.EOF {
		off := dec.InputOffset()
		return st, moveAside(path, fmt.Errorf("saved state %s has %d bytes after its end at byte %d (%w)",
			path, int64(len(data))-off, off, ErrTrailingData))
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
	return fmt.Errorf("%w; moved it to %s", cause, bad)
}

// SaveState writes st to path atomically and durably (internal/atomicfile):
// a crash at any moment leaves either the old file or the new one, never a
// mix, and a save that returned survives a power loss.
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
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	return nil
}
