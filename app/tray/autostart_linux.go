package tray

import (
	"fmt"
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

const autostartKind = "autostart entry"

func autostartFile(exe string) []byte { return []byte(desktopEntry(exe)) }

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
