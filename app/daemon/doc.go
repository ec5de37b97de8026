// Package daemon is the running quotabar without its menu bar: StartDaemon
// loads the configuration (package config), restores the saved state,
// builds the limiter, the socket server and the parts (the web fallback
// and the HTTP proxy, built in newParts; a part that answers on the socket
// adds its routes before the server serves), serves the socket and watches
// the configuration file, applying good edits in place and keeping the
// configuration in force when an edit is broken or is not a regular file.
// RunDaemon is `quotabar serve`: it runs all that until SIGINT or SIGTERM.
//
// A person's change (pause, priority, fallback switch, from the API or the
// menu) is saved before it is acknowledged (Persist); what the limiter
// learns on its own is saved after a short delay. Every save is an atomic,
// durable write (internal/atomicfile); the state file is read only if it
// is a regular file under MaxStateSize, and one that does not decode whole
// is moved aside.
package daemon
