// Package config is quotabar's configuration file: its types (Config and
// the tables in it), reading it (only a regular file, size and nesting
// capped before parsing), parsing and checking it with errors that name
// file, line and key (Error, Errors), the built-in provider presets, the
// commented default file written on first start (default_config.toml), and
// where the files live (XDG directories on Linux, Application Support on
// macOS, named by the bundle id (socket.BundleID)).
//
// It depends only on the limiter, whose rules (policy syntax, names,
// priorities) it applies rather than repeats, so `quotabar config check`
// runs without a daemon.
package config
