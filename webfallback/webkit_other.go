//go:build !linux && !darwin

package webfallback

import (
	"context"
	"log/slog"
	"syscall"
)

func findWebKitDriver(string) (webkitDriver, error) {
	return webkitDriver{}, &UnavailableError{Browser: WebKit, Msg: "the webkit fallback runs on macOS (Safari) and Linux (WebKitGTK) only; use chrome or system"}
}

func driverSysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// webkitExposure is "": the driver and browser have no door beyond the relay
// and the driver's session id.
const webkitExposure = ""

// isolatedDriver returns nil: there is no network namespace here; the
// driver listens on 127.0.0.1 behind its session id (see wdRelay).
func isolatedDriver(context.Context, *slog.Logger, webkitDriver, string) (*webkitSession, error) {
	return nil, nil
}
