//go:build !linux && !darwin

package webfallback

import "syscall"

func findWebKitDriver(string) (webkitDriver, error) {
	return webkitDriver{}, &UnavailableError{Browser: WebKit, Msg: "the webkit fallback runs on macOS (Safari) and Linux (WebKitGTK) only; use chrome or system"}
}

func driverSysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// webkitExposure is "": the driver and browser have no door beyond the relay
// and the driver's session id.
const webkitExposure = ""
