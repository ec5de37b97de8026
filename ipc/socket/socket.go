package socket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// BundleID is the macOS bundle identifier of the app (Info.plist's
// CFBundleIdentifier; a test checks they agree). The socket, and the app's
// config, live in ~/Library/Application Support/<BundleID>/ on macOS.
const BundleID = "dev.quotabar.quotabar"

// maxDarwinSocketPath is the longest socket path macOS accepts (sun_path is
// 104 bytes including the terminating NUL).
const maxDarwinSocketPath = 103

// Path returns the path of the daemon's socket, resolved as API.md says: $QUOTABAR_SOCKET when set and not empty; on macOS
// ~/Library/Application Support/<BundleID>/quotabar.sock unless that is longer
// than 103 bytes; elsewhere $XDG_RUNTIME_DIR/quotabar/quotabar.sock; else
// /tmp/quotabar-<uid>/quotabar.sock.
func Path() (string, error) {
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

// CheckPathLen explains the kernel's bare EINVAL for a socket path that does
// not fit in sun_path.
func CheckPathLen(path string) error {
	if len(path) > maxSocketPath {
		return fmt.Errorf("socket: path %s is %d bytes; a Unix socket path may have at most %d here: set QUOTABAR_SOCKET to a shorter one", path, len(path), maxSocketPath)
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
// directory 0700 if it is missing; an existing directory must be a real
// directory (not a symlink) that belongs to this user and that no other user
// may enter (no group or other permission bits): a directory another user
// made first, to serve a fake daemon, is refused with a message naming its
// owner. The socket is made 0600. A
// socket that answers means another daemon is running (*AlreadyRunningError);
// a socket file nobody listens on is left over from a crash and is removed.
//
// Every connection the listener accepts comes from this user or root: others
// are answered 403 and closed before any of their bytes is read.
func Listen(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("socket: empty socket path")
	}
	if err := CheckPathLen(path); err != nil {
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
		return nil, fmt.Errorf("socket: listen on %s: %w", path, err)
	}
	// The directory is already private; this keeps the socket private too
	// if the directory is ever opened up.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket: chmod socket: %w", err)
	}
	return &peerListener{UnixListener: ln, uid: os.Getuid()}, nil
}

func ensureDir(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("socket: create socket directory: %w", err)
		}
		// MkdirAll honours the umask; be exact.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("socket: chmod socket directory: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket: socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("socket: socket directory %s is not a directory (a symlink or file is not accepted); remove it or set QUOTABAR_SOCKET", dir)
	}
	return checkPrivateDir(dir, fi, "quotabar cannot listen there")
}

// checkPrivateDir checks that the socket directory dir (fi is its Lstat)
// belongs to this user and is closed to everyone else. what says what the
// failure stops, for the message.
func checkPrivateDir(dir string, fi os.FileInfo, what string) error {
	uid := os.Getuid()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
		return &UntrustedError{Dir: dir, Owner: int(st.Uid), Mode: fi.Mode().Perm(),
			Problem: fmt.Sprintf("belongs to %s, not to you (%s): another user may be impersonating the daemon; %s", userName(int(st.Uid)), userName(uid), what),
			Fix:     fmt.Sprintf("remove it (as root: rm -rf %s) and start quotabar again, or set QUOTABAR_SOCKET to a path in a directory of your own", dir)}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return &UntrustedError{Dir: dir, Owner: uid, Mode: fi.Mode().Perm(),
			Problem: fmt.Sprintf("is open to other users (mode %v); %s", fi.Mode().Perm(), what),
			Fix:     fmt.Sprintf("chmod 700 %s, or set QUOTABAR_SOCKET to a path in a private directory", dir)}
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
		return fmt.Errorf("socket: socket: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("socket: %s exists and is not a socket; not removing it", path)
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
		return fmt.Errorf("socket: cannot tell whether a daemon is running on %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("socket: remove stale socket: %w", err)
	}
	return nil
}

// peerListener admits connections from its own uid and root only.
type peerListener struct {
	*net.UnixListener
	uid int
	log *slog.Logger // set through SetLogger before the first Accept
}

// SetLogger makes the listener log refused connections to log instead of
// slog.Default. Call it before the first Accept.
func (l *peerListener) SetLogger(log *slog.Logger) { l.log = log }

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
			log.Warn("socket: closing a connection whose peer credentials cannot be read", "err", err)
			c.Close()
			continue
		}
		if p.UID == l.uid || p.UID == 0 {
			return c, nil
		}
		log.Warn("socket: refused a connection from another user", "uid", p.UID, "pid", p.PID, "allowed_uid", l.uid)
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

// UntrustedError is returned by Listen and Dial when the socket's directory,
// or the process serving the socket, is not this user's: talking to it could
// hand another user this user's requests (and, through `quotabar run`, API
// keys and prompts).
type UntrustedError struct {
	Dir     string      // the socket's directory
	Socket  string      // the socket, when the peer was the problem
	Owner   int         // the uid that owns Dir, or that serves Socket
	Mode    os.FileMode // Dir's permissions
	Problem string      // what is wrong, for a person
	Fix     string      // what to do about it
}

func (e *UntrustedError) Error() string {
	if e.Socket != "" {
		return fmt.Sprintf("socket: the daemon on %s %s; %s", e.Socket, e.Problem, e.Fix)
	}
	return fmt.Sprintf("socket: the socket directory %s %s; %s", e.Dir, e.Problem, e.Fix)
}

// userName is "uid N (name)", or "uid N" when the name is unknown.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		return fmt.Sprintf("uid %d (%s)", uid, u.Username)
	}
	return fmt.Sprintf("uid %d", uid)
}

// Dial connects to the daemon's socket at path, after checking that it can
// be trusted: the socket's directory must be a directory of this user that
// no other user may enter, and the process that listens on the socket must
// run as this user (read from the kernel's peer credentials of this very
// connection, so a socket swapped in later is caught too). Otherwise it
// returns an *UntrustedError and sends nothing. A daemon that is not running
// is an error that says how to start it.
func Dial(ctx context.Context, path string) (net.Conn, error) {
	if err := CheckPathLen(path); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the quotabar daemon at %s (is it running? start it with `quotabar serve`): %w", path, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("socket: the socket directory %s is not a directory (a symlink or file is not accepted); remove it or set QUOTABAR_SOCKET", dir)
	}
	if err := checkPrivateDir(dir, fi, "quotabar will not talk to a daemon there"); err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the quotabar daemon at %s (is it running? start it with `quotabar serve`): %w", path, err)
	}
	p, err := peerOf(c.(*net.UnixConn))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("socket: cannot read who serves %s, so it cannot be trusted: %w", path, err)
	}
	if uid := os.Getuid(); p.UID != uid {
		c.Close()
		return nil, &UntrustedError{Dir: dir, Socket: path, Owner: p.UID, Mode: fi.Mode().Perm(),
			Problem: fmt.Sprintf("runs as %s, not as you (%s): another user may be impersonating quotabar", userName(p.UID), userName(uid)),
			Fix:     fmt.Sprintf("stop that process (pid %d) or set QUOTABAR_SOCKET to a path in a directory of your own", p.PID)}
	}
	return c, nil
}

// Transport returns an HTTP transport whose every connection is a Dial to
// path: the one way quotabar's client, benchmark and simulator reach the
// daemon. The host in request URLs is ignored.
func Transport(path string) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return Dial(ctx, path)
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
}
