// Package app is the running quotabar application: it reads the TOML
// configuration (creating a commented one on first start), restores and
// saves the run-time state, builds the limiter and serves it on the Unix
// socket, and applies edits to the configuration while running.
//
// StartDaemon wires those parts together; RunDaemon runs them until SIGINT
// or SIGTERM (the `quotabar serve` command). The menu bar, the web fallback
// and the HTTP proxy live in their own files of this package and hook into
// the Daemon.
package app
