package tray

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// openConfigCommand opens the config file in the desktop's editor. On
// macOS, open -t picks the default text editor: a .toml file has no
// application of its own there, and plain open would only show an error.
func openConfigCommand(path string) (string, []string) {
	if runtime.GOOS == "darwin" {
		return "open", []string{"-t", path}
	}
	return "xdg-open", []string{path}
}

// startDetached runs a desktop helper without waiting for it (a reaper
// goroutine waits, so it leaves no zombie).
func startDetached(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", name, err)
	}
	go cmd.Wait()
	return nil
}

// copyText puts s on the clipboard with the platform's clipboard tool. On
// Linux the session's kind picks the order: a GNOME or KDE machine often has
// both wl-copy and xclip, and each fails outside its own kind of session, so
// a tool that fails hands over to the next one.
func copyText(s string) error {
	var names []string
	var errs []error
	for _, tool := range clipboardTools() {
		if _, err := exec.LookPath(tool[0]); err != nil {
			names = append(names, tool[0])
			continue
		}
		// No output pipes: xclip and wl-copy fork a child that keeps
		// serving the selection, and would hold them open.
		cmd := exec.Command(tool[0], tool[1:]...)
		cmd.Stdin = strings.NewReader(s)
		if err := cmd.Run(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", tool[0], err))
			continue
		}
		return nil
	}
	if len(errs) > 0 {
		return fmt.Errorf("copying to the clipboard: %w", errors.Join(errs...))
	}
	return errors.New("no clipboard tool found; install one of " + strings.Join(names, ", "))
}

// clipboardTools lists the clipboard commands to try, best first.
func clipboardTools() [][]string {
	if runtime.GOOS == "darwin" {
		return [][]string{{"pbcopy"}}
	}
	wayland := []string{"wl-copy"}
	x11 := [][]string{{"xclip", "-selection", "clipboard"}, {"xsel", "--clipboard", "--input"}}
	if os.Getenv("WAYLAND_DISPLAY") != "" {
		return append([][]string{wayland}, x11...) // XWayland serves xclip too
	}
	return append(x11, wayland)
}
