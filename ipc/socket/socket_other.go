//go:build !linux && !darwin

package socket

import (
	"fmt"
	"net"
	"runtime"
)

// peerOf is not implemented here: without peer credentials the listener
// cannot tell who connects, so it serves nobody.
func peerOf(c *net.UnixConn) (peer, error) {
	return peer{}, fmt.Errorf("ipc: peer credentials are not implemented on %s", runtime.GOOS)
}

// maxSocketPath is the longest socket path the BSDs bind: sun_path is 104
// bytes including the terminating NUL.
const maxSocketPath = 103
