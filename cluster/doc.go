// Package cluster lets the daemons of several machines share one service's
// quota through Redis (or Valkey), with capacity leases in the style of
// youtube/doorman: each daemon states its demand for every shared service
// once per refresh interval and receives a share of the service's capacity
// from one fair-share allocation run as a Lua script in Redis, so that each
// step is atomic and every shared time is Redis's TIME, never a local
// clock. Between refreshes the daemon's own limiter decides every grant in
// process, within its share (limiter.SetShare): Redis is touched once per
// interval per service, not per call.
//
// The allocation never hands out more than the whole: a daemon's new share
// is at most one less what every other daemon may still hold in a window
// (the larger of its share and its usage still in the window), so no
// sliding window of a shared policy holds more than its quota across all
// daemons, whenever shares move. A 429 seen by one daemon is published to
// the others at once (pub/sub, and the refresh as a poll), and limits
// learned from headers travel with the refresh. While Redis is away a
// daemon keeps its last share, which is safe because no one can be given
// more meanwhile; when Redis comes back after a gap or without its data it
// freezes every share for a lease and a window, so the daemons rejoin
// without overshoot. docs/CLUSTER.md has the design, the comparison with a
// shared sliding log, and every fault mode.
//
// Member is one daemon's side (New, Run, Status); Config is the [cluster]
// table, which app/config parses (rediss:// is verified against CAFile or
// the system's roots, with CertFile and KeyFile for a server that asks for
// a client certificate: config.go); WithStateFile keeps the last known shares
// for a start while Redis is away. The scripts are in script.go, the keys
// and their namespace in keys.go.
package cluster
