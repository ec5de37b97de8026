//go:build unix

package alerts

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// CheckHookSource returns an error when the file the hooks come from, or
// its directory, could be changed by another user: a hook is a command run
// as this user, so whoever can write the file could run anything as them.
func CheckHookSource(path string) error {
	for _, p := range []string{path, filepath.Dir(path)} {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("alerts: hooks not run: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok && int(st.Uid) != os.Getuid() && st.Uid != 0 {
			return fmt.Errorf("alerts: hooks not run: %s belongs to uid %d, not to you (uid %d); a hook runs as you", p, st.Uid, os.Getuid())
		}
		if fi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("alerts: hooks not run: other users may write %s (mode %v); chmod go-w it, since a hook runs as you", p, fi.Mode().Perm())
		}
	}
	return nil
}
