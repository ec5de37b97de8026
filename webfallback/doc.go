// Package webfallback opens a service's web interface in a browser that an
// agent can drive when the service's API refuses it: Chrome or Chromium over
// the DevTools protocol, WebKit over W3C WebDriver, or the person's default
// browser.
//
// Each service gets its own Chrome profile under Options.Dir, so the person
// signs in once and stays signed in. The browser is reused by later opens
// while it runs.
//
// Nobody but this user may drive the browser. Chrome is started with
// --remote-debugging-pipe and has no DevTools port: the Manager owns the
// pipe (cdpmux.go) and serves agents through a relay on 127.0.0.1
// (cdprelay.go) that answers only under a secret path prefix handed out with
// each Open (secret.go); each agent connection gets a DevTools session of
// its own. A WebKit session is reached only through a relay of the same kind
// (wdrelay.go) that also hides the driver's own session id. On Linux the
// WebKit driver and MiniBrowser run in a private network namespace
// (netns_linux.go), because WebKitWebDriver makes MiniBrowser open an
// inspector port without authentication: the relay reaches the driver
// through a Unix socket, served by this same executable re-run as a helper
// inside the namespace, and the browser reaches the network through an
// HTTP proxy of the Manager (egress.go). Where the kernel refuses the
// namespace, the driver listens on the host's 127.0.0.1 and a warning is
// logged.
//
// Nothing outlives the program or its use (lifetime.go): Chrome exits when
// its pipe closes, which a kill -9 of the program does too; the WebDriver
// server and the browser it starts get the parent-death signal on Linux; the
// relays are part of the program. A tab or session that no agent used for
// Options.IdleTimeout is closed, and so is a Chrome with none left. Chrome is
// closed with the DevTools command Browser.close, never a plain signal,
// because it writes cookies to disk lazily and a SIGTERM loses the ones set
// in the last seconds.
//
// WebDriver sessions start with an empty profile, so the Manager saves a
// WebKit session's cookies to a file only the user can read when it closes
// the session and adds them to the next one. A WebKit driver runs one
// session: a second Open for the same service while one is open fails with
// ErrBusy rather than silently sharing the session between two agents.
//
// A Manager is safe for concurrent use.
package webfallback
