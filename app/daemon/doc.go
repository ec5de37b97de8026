// Package daemon is the running quotabar without its menu bar: StartDaemon
// loads the configuration (package config), restores the saved state,
// builds the limiter, the socket server and the parts (the web fallback
// and the HTTP proxy, each a part built in newParts), serves the socket
// and watches the configuration file, applying good edits in place and
// keeping the configuration in force when an edit is broken. RunDaemon is
// `quotabar serve`: it runs all that until SIGINT or SIGTERM.
//
// A person's change (pause, priority, fallback switch) is saved before it
// is acknowledged (Persist); what the limiter learns on its own is saved
// after a short delay. Every save is an atomic, durable write
// (internal/atomicfile).
package daemon
