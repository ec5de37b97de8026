package ipc

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// BundleID is the macOS bundle identifier of the app (Info.plist,
// app.BundleID). The socket, and the app's config, live in
// ~/Library/Application Support/<BundleID>/ on macOS.
const BundleID = "dev.quotabar.quotabar"

// maxDarwinSocketPath is the longest socket path macOS accepts (sun_path is
// 104 bytes including the terminating NUL).
const maxDarwinSocketPath = 103

// SocketPath returns the path of the daemon's socket, resolved as API.md
// says: $QUOTABAR_SOCKET when set and not empty; on macOS
// ~/Library/Application Support/<BundleID>/quotabar.sock unless that is longer
// than 103 bytes; elsewhere $XDG_RUNTIME_DIR/quotabar/quotabar.sock; else
// /tmp/quotabar-<uid>/quotabar.sock.
func SocketPath() (string, error) {
	return socketPath(runtime.GOOS, os.Getenv, os.UserHomeDir, os.Getuid())
}

func socketPath(goos string, getenv func(string) string, home func() (string, error), uid int) (string, error) {
	if p := getenv("QUOTABAR_SOCKET"); p != "" {
		return p, nil
	}
	tmp := filepath.Join("/tmp", "quotabar-"+strconv.Itoa(uid), "quotabar.sock")
	if goos == "darwin" {
		h, err := home()
		if err != nil || h == "" {
			return tmp, nil
		}
		p := filepath.Join(h, "Library", "Application Support", BundleID, "quotabar.sock")
		if len(p) > maxDarwinSocketPath {
			return tmp, nil
		}
		return p, nil
	}
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "quotabar", "quotabar.sock"), nil
	}
	return tmp, nil
}

// checkPathLen explains the kernel's bare EINVAL for a socket path that does
// not fit in sun_path.
func checkPathLen(path string) error {
	if len(path) > maxSocketPath {
		return fmt.Errorf("ipc: socket path %s is %d bytes; a Unix socket path may have at most %d here: set QUOTABAR_SOCKET to a shorter one", path, len(path), maxSocketPath)
	}
	return nil
}

// AlreadyRunningError is returned by Listen when another process is serving
// the socket.
type AlreadyRunningError struct {
	Path string
	PID  int // 0 when the peer's pid could not be read
}

func (e *AlreadyRunningError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("quotabar is already running (pid %d) on %s", e.PID, e.Path)
	}
	return fmt.Sprintf("quotabar is already running on %s", e.Path)
}

// peer is what the kernel says about the other end of a connection.
type peer struct {
	UID int
	PID int // 0 when the platform does not say
}

// Listen listens on the Unix socket at path. It creates the socket's
// directory 0700 if it is missing; an existing directory must belong to this
// user and must not be writable by anyone else. The socket is made 0600. A
// socket that answers means another daemon is running (*AlreadyRunningError);
// a socket file nobody listens on is left over from a crash and is removed.
//
// Every connection the listener accepts comes from this user or root: others
// are answered 403 and closed before any of their bytes is read.
func Listen(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("ipc: empty socket path")
	}
	if err := checkPathLen(path); err != nil {
		return nil, err
	}
	if err := ensureDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if err := clearStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("ipc: listen on %s: %w", path, err)
	}
	// The directory is already private; this keeps the socket private too
	// if the directory is ever opened up.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("ipc: chmod socket: %w", err)
	}
	return &peerListener{UnixListener: ln, uid: os.Getuid()}, nil
}

func ensureDir(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("ipc: create socket directory: %w", err)
		}
		// MkdirAll honours the umask; be exact.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("ipc: chmod socket directory: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("ipc: socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("ipc: socket directory %s is not a directory (a symlink or file is not accepted)", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("ipc: socket directory %s belongs to uid %d, not to this user (uid %d); remove it or set QUOTABAR_SOCKET", dir, st.Uid, os.Getuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("ipc: socket directory %s is writable by other users (mode %v); use a private directory (chmod 700) or set QUOTABAR_SOCKET", dir, fi.Mode().Perm())
	}
	return nil
}

// clearStale removes a socket file left by a daemon that died, and reports a
// live one.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ipc: socket: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("ipc: %s exists and is not a socket; not removing it", path)
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err == nil {
		defer c.Close()
		e := &AlreadyRunningError{Path: path}
		if p, err := peerOf(c.(*net.UnixConn)); err == nil {
			e.PID = p.PID
		}
		return e
	}
	if errors.Is(err, syscall.ENOENT) { // removed meanwhile: nothing to clear
		return nil
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("ipc: cannot tell whether a daemon is running on %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("ipc: remove stale socket: %w", err)
	}
	return nil
}

// peerListener admits connections from its own uid and root only.
type peerListener struct {
	*net.UnixListener
	uid int
	log *slog.Logger // set by Server.Serve before the first Accept
}

// Accept returns the next connection from an allowed peer. Connections from
// other users are answered with a 403 and closed, unread, in the background.
func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		log := l.log
		if log == nil {
			log = slog.Default()
		}
		p, err := peerOf(c)
		if err != nil {
			log.Warn("ipc: closing a connection whose peer credentials cannot be read", "err", err)
			c.Close()
			continue
		}
		if p.UID == l.uid || p.UID == 0 {
			return c, nil
		}
		log.Warn("ipc: refused a connection from another user", "uid", p.UID, "pid", p.PID, "allowed_uid", l.uid)
		go refuse(c)
	}
}

// forbiddenResponse is written to other users' connections. Nothing of the
// request is read: the answer goes out before it and the connection closes.
var forbiddenResponse = func() string {
	body := `{"error":{"code":"forbidden","message":"this quotabar daemon serves only its own user and root"}}` + "\n"
	return "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body
}()

func refuse(c net.Conn) {
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, forbiddenResponse)
}
