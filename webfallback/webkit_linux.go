package webfallback

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// miniBrowserGlobs are where distributions put WebKitGTK's MiniBrowser.
var miniBrowserGlobs = []string{
	"/usr/lib/*/webkitgtk-6.0/MiniBrowser",
	"/usr/lib/*/webkit2gtk-4.*/MiniBrowser",
	"/usr/lib/webkit2gtk-4.*/MiniBrowser",
	"/usr/lib64/webkit2gtk-4.*/MiniBrowser",
	"/usr/libexec/webkit2gtk-4.*/MiniBrowser",
	"/usr/libexec/webkitgtk-6.0/MiniBrowser",
}

// findWebKitDriver finds WebKitWebDriver and the MiniBrowser it drives.
func findWebKitDriver(configured string) (webkitDriver, error) {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return webkitDriver{}, &UnavailableError{Browser: WebKit, Msg: "WebKit needs a display and neither DISPLAY nor WAYLAND_DISPLAY is set; run quotabar in a desktop session (or under xvfb-run)"}
	}
	path := configured
	if path == "" {
		p, err := exec.LookPath("WebKitWebDriver")
		if err != nil {
			return webkitDriver{}, &UnavailableError{Browser: WebKit, Msg: "WebKitWebDriver not found on PATH; install webkit2gtk-driver (Debian, Ubuntu) or webkit2gtk4.1-devel (Fedora)"}
		}
		path = p
	} else if _, err := os.Stat(path); err != nil {
		return webkitDriver{}, &UnavailableError{Browser: WebKit, Msg: fmt.Sprintf("the configured WebKit driver %q does not exist; install webkit2gtk-driver or fix the path", path)}
	}
	var found []string
	for _, g := range miniBrowserGlobs {
		m, _ := filepath.Glob(g)
		found = append(found, m...)
	}
	if len(found) == 0 {
		return webkitDriver{}, &UnavailableError{Browser: WebKit, Msg: fmt.Sprintf("no WebKitGTK MiniBrowser found (looked in %s); install libwebkit2gtk-4.1-0 (Debian, Ubuntu) or webkit2gtk4.1 (Fedora)", strings.Join(miniBrowserGlobs, ", "))}
	}
	// The newest WebKitGTK sorts last.
	slices.Sort(found)
	mb := found[len(found)-1]
	return webkitDriver{
		path: path,
		args: func(port int) []string { return []string{"--port=" + strconv.Itoa(port), "--host=127.0.0.1"} },
		caps: func(dir, proxy string) (map[string]any, error) {
			bin, err := deathBoundBrowser(dir, mb)
			if err != nil {
				return nil, err
			}
			args := []string{"--automation"}
			if proxy != "" {
				// MiniBrowser's own setting (a custom proxy of its network
				// session, no ignored hosts): every request, 127.0.0.1
				// included, leaves the namespace through the proxy.
				args = append(args, "--proxy="+proxy)
			}
			return map[string]any{"webkitgtk:browserOptions": map[string]any{"binary": bin, "args": args}}, nil
		},
		unavailable: func(error) error { return nil },
	}, nil
}

// webkitExposure is logged when a session starts outside a private network
// namespace (the kernel refused one, see isolatedDriver): WebKitWebDriver
// makes MiniBrowser listen for its inspector on 127.0.0.1
// (WEBKIT_INSPECTOR_SERVER) without authentication, and WebKitGTK has no
// other transport for it.
const webkitExposure = "WebKitGTK's inspector server of this session listens on the host's 127.0.0.1 without authentication while the session is open; on a machine other people log in to, allow user namespaces (or run as root) or prefer browser = \"chrome\""

// driverSysProcAttr starts the driver in a group of its own (stop signals
// the group) that dies with us: PR_SET_PDEATHSIG SIGKILL, so that a kill -9
// of the daemon takes the driver and its port with it.
func driverSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// deathBoundBrowser returns a program that runs MiniBrowser with
// PR_SET_PDEATHSIG SIGKILL (util-linux setpriv), so that the browser dies
// with the driver instead of staying open, signed in, after the daemon and
// the driver are gone: WebKitWebDriver does not take it down when it is
// killed. Without setpriv, MiniBrowser itself is returned and only a clean
// stop ends it.
func deathBoundBrowser(dir, mb string) (string, error) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		return mb, nil
	}
	script := "#!/bin/sh\nexec " + shQuote(setpriv) + " --pdeathsig KILL -- " + shQuote(mb) + " \"$@\"\n"
	path := filepath.Join(dir, "minibrowser")
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		return "", fmt.Errorf("writing the browser wrapper: %w", err)
	}
	return path, nil
}

// shQuote quotes s for sh.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
