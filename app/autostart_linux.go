package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// autostartPath is the XDG autostart entry that starts quotabar at login
// (https://specifications.freedesktop.org/autostart-spec/).
func autostartPath() (string, error) {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("finding the autostart directory: %w", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "autostart", "quotabar.desktop"), nil
}

// autostartEnabled reports whether the autostart entry exists.
func autostartEnabled() bool {
	p, err := autostartPath()
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// setAutostart writes (on) or removes (off) the autostart entry that runs
// exe with no arguments: the tray app with the daemon inside.
func setAutostart(on bool, exe string) error {
	p, err := autostartPath()
	if err != nil {
		return err
	}
	if !on {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing the autostart entry: %w", err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("creating the autostart directory: %w", err)
	}
	if err := writeFileAtomic(p, []byte(desktopEntry(exe)), 0o644); err != nil {
		return fmt.Errorf("writing the autostart entry: %w", err)
	}
	return nil
}

func desktopEntry(exe string) string {
	return "[Desktop Entry]\n" +
		"Type=Application\n" +
		"Name=quotabar\n" +
		"Comment=Coordinates API rate limits between AI agents\n" +
		"Exec=" + desktopExec(exe) + "\n" +
		"Terminal=false\n" +
		"X-GNOME-Autostart-enabled=true\n"
}

// desktopExec quotes a program path for an Exec key: inside double quotes,
// `"`, "`", `$` and `\` are escaped with a backslash; then, because the key is
// a string value, every backslash is doubled again, and `%` becomes `%%` (a
// lone % would start a field code).
func desktopExec(exe string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range exe {
		switch r {
		case '"', '`', '$', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return strings.NewReplacer(`\`, `\\`, "%", "%%").Replace(b.String())
}
