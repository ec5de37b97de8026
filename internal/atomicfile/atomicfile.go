// Package atomicfile writes files so that a crash at any moment leaves
// either the old contents or the new ones, never a torn or empty file, and
// so that a write that has returned survives a power loss.
//
// quotabar keeps three kinds of small files this way: the saved state, the
// web fallback's cookies and the proxy's token. Losing the token would change
// every agent's base URL, so all three get the same, strongest, durability.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile writes data to a temporary file beside path with mode perm,
// syncs it, renames it over path and syncs the directory, so that the rename
// itself is durable. On error path is unchanged and no temporary file is
// left behind.
func WriteFile(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("atomicfile: writing %s: %w", path, err)
		}
	}()
	// CreateTemp makes the file 0600; Chmod gives it perm even under a
	// umask, before any byte is written.
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
