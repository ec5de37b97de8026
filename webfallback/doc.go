// Package webfallback opens a service's web interface in a browser that an
// agent can drive when the service's API refuses it: Chrome or Chromium over
// the DevTools protocol, WebKit over W3C WebDriver, or the person's default
// browser.
//
// Each service gets its own Chrome profile under Options.Dir, so the person
// signs in once and stays signed in. The browser outlives the request that
// started it and is reused by later opens, also across restarts of the
// program: a browser that still runs on the profile is found through the
// DevToolsActivePort file in the profile and a probe of its /json/version.
// It is closed with the DevTools command Browser.close, never a plain signal,
// because Chrome writes cookies to disk lazily and a SIGTERM loses the ones
// set in the last seconds.
//
// WebDriver sessions start with an empty profile, so the Manager saves a
// WebKit session's cookies to a file only the user can read when it closes
// the session and adds them to the next one. A WebKit driver runs one
// session: a second Open for the same service while one is open fails with
// ErrBusy rather than silently sharing the session between two agents.
//
// A Manager is safe for concurrent use.
package webfallback
