package socket

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerOf reads LOCAL_PEERCRED (the uid) and LOCAL_PEERPID (the pid) of the
// process at the other end.
func peerOf(c *net.UnixConn) (peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return peer{}, err
	}
	var p peer
	var serr error
	if err := raw.Control(func(fd uintptr) {
		var cred *unix.Xucred
		cred, serr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
		if serr != nil {
			return
		}
		p.UID = int(cred.Uid)
		// The pid is informational (for "already running"); its absence is
		// not an error.
		if pid, err := unix.GetsockoptInt(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERPID); err == nil {
			p.PID = pid
		}
	}); err != nil {
		return peer{}, err
	}
	return p, serr
}

// maxSocketPath is the longest socket path macOS binds.
const maxSocketPath = maxDarwinSocketPath
