package webfallback

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// findWebKitDriver finds safaridriver, which drives Safari.
func findWebKitDriver(configured string) (webkitDriver, error) {
	path := configured
	if path == "" {
		p, err := exec.LookPath("safaridriver")
		if err != nil {
			p = "/usr/bin/safaridriver"
			if _, err := os.Stat(p); err != nil {
				return webkitDriver{}, &UnavailableError{Browser: WebKit, Msg: "safaridriver not found; it comes with Safari in /usr/bin"}
			}
		}
		path = p
	}
	return webkitDriver{
		path: path,
		args: func(port int) []string { return []string{"-p", strconv.Itoa(port)} },
		caps: func(string, string) (map[string]any, error) { return map[string]any{"browserName": "safari"}, nil },
		unavailable: func(err error) error {
			// Safari refuses automation until the person allows it once.
			if wde, ok := errors.AsType[*webdriverError](err); ok && strings.Contains(strings.ToLower(wde.Message), "remote automation") {
				return &UnavailableError{Browser: WebKit, Msg: "Safari does not allow remote automation; run `safaridriver --enable` once (it asks for an administrator password) and turn on Develop > Allow Remote Automation in Safari", Err: err}
			}
			return nil
		},
	}, nil
}

// driverSysProcAttr starts the driver in a group of its own, so that stop
// reaches the browser it starts. macOS has no parent-death signal; the idle
// timeout and a clean shutdown end the driver.
func driverSysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// webkitExposure is "": the driver and browser have no door beyond the relay
// and the driver's session id.
const webkitExposure = ""

// isolatedDriver returns nil: there is no network namespace here; the
// driver listens on 127.0.0.1 behind its session id (see wdRelay).
func isolatedDriver(context.Context, *slog.Logger, webkitDriver, string) (*webkitSession, error) {
	return nil, nil
}
