package socket

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerOf reads SO_PEERCRED: the uid and pid of the process at the other end,
// as they were when it connected (or, for a dialled socket, listened).
func peerOf(c *net.UnixConn) (peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return peer{}, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return peer{}, err
	}
	if serr != nil {
		return peer{}, serr
	}
	return peer{UID: int(cred.Uid), PID: int(cred.Pid)}, nil
}

// maxSocketPath is the longest socket path Go binds on Linux: sun_path is
// 108 bytes, and Go keeps the last one for the terminating NUL.
const maxSocketPath = 107
