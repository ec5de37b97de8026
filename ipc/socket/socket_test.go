package socket

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/quotabar/quotabar/internal/testenv"
)

func TestSocketPath(t *testing.T) {
	long := "/Users/" + strings.Repeat("x", 60)
	tests := []struct {
		name string
		goos string
		env  map[string]string
		home string
		want string
	}{
		{"env wins", "linux", map[string]string{"QUOTABAR_SOCKET": "/x/q.sock", "XDG_RUNTIME_DIR": "/run/user/1"}, "/home/a", "/x/q.sock"},
		{"env wins on macOS", "darwin", map[string]string{"QUOTABAR_SOCKET": "/x/q.sock"}, "/Users/a", "/x/q.sock"},
		{"linux runtime dir", "linux", map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}, "/home/a", "/run/user/1000/quotabar/quotabar.sock"},
		{"linux without runtime dir", "linux", nil, "/home/a", "/tmp/quotabar-1000/quotabar.sock"},
		{"empty env is unset", "linux", map[string]string{"QUOTABAR_SOCKET": "", "XDG_RUNTIME_DIR": ""}, "/home/a", "/tmp/quotabar-1000/quotabar.sock"},
		{"freebsd like linux", "freebsd", map[string]string{"XDG_RUNTIME_DIR": "/var/run/u"}, "/home/a", "/var/run/u/quotabar/quotabar.sock"},
		{"macOS", "darwin", map[string]string{"XDG_RUNTIME_DIR": "/ignored"}, "/Users/a", "/Users/a/Library/Application Support/" + BundleID + "/quotabar.sock"},
		{"macOS path over 103 bytes", "darwin", nil, long, "/tmp/quotabar-1000/quotabar.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := socketPath(tt.goos, func(k string) string { return tt.env[k] },
				func() (string, error) { return tt.home, nil }, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	// The boundary: exactly 103 bytes is allowed, 104 is not.
	for _, n := range []int{103, 104} {
		suffix := "/Library/Application Support/" + BundleID + "/quotabar.sock"
		home := "/" + strings.Repeat("h", n-len(suffix)-1)
		got, _ := socketPath("darwin", func(string) string { return "" }, func() (string, error) { return home, nil }, 7)
		if fits := got == home+suffix; fits != (n <= 103) {
			t.Errorf("%d-byte macOS path: got %q", n, got)
		}
	}
}

func TestListenModesAndAlreadyRunning(t *testing.T) {
	dir := filepath.Join(testenv.ShortTempDir(t), "sub")
	path := filepath.Join(dir, "q.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	// Serve so that the second Listen's probe is answered.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, err = Listen(path)
	var running *AlreadyRunningError
	if !errors.As(err, &running) {
		t.Fatalf("second Listen: %v, want *AlreadyRunningError", err)
	}
	if running.PID != os.Getpid() || running.Path != path {
		t.Errorf("got %+v, want pid %d path %s", running, os.Getpid(), path)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Errorf("message %q does not name the pid", err)
	}
}

func TestListenRemovesStaleSocket(t *testing.T) {
	path := filepath.Join(testenv.ShortTempDir(t), "q.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // as after kill -9: the file stays, nobody listens
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket file missing: %v", err)
	}
	ln2, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial the new socket: %v", err)
	}
	c.Close()
	ln2.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left the socket file: %v", err)
	}
}

func TestSocketPathLength(t *testing.T) {
	dir := testenv.ShortTempDir(t)
	pathOf := func(n int) string { return filepath.Join(dir, strings.Repeat("s", n-len(dir)-1)) }

	longest := pathOf(maxSocketPath)
	ln, err := Listen(longest)
	if err != nil {
		t.Fatalf("a %d-byte path, the most the system allows: %v", len(longest), err)
	}
	ln.Close()

	tooLong := pathOf(maxSocketPath + 1)
	want := fmt.Sprintf("is %d bytes; a Unix socket path may have at most %d", len(tooLong), maxSocketPath)
	if _, err := Listen(tooLong); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Listen on a %d-byte path: %v; want an error saying %q", len(tooLong), err, want)
	}
	if _, err := Dial(context.Background(), tooLong); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Dial of a %d-byte path: %v; want an error saying %q", len(tooLong), err, want)
	}
}

func TestListenRefuses(t *testing.T) {
	t.Run("a file that is not a socket", func(t *testing.T) {
		path := filepath.Join(testenv.ShortTempDir(t), "q.sock")
		os.WriteFile(path, []byte("keep me"), 0o600)
		if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("got %v, want a not-a-socket error", err)
		}
		if data, _ := os.ReadFile(path); string(data) != "keep me" {
			t.Error("the file was changed")
		}
	})
	for _, mode := range []os.FileMode{0o777, 0o755, 0o710} {
		t.Run(fmt.Sprintf("a directory of mode %v", mode), func(t *testing.T) {
			dir := testenv.ShortTempDir(t)
			os.Chmod(dir, mode)
			if _, err := Listen(filepath.Join(dir, "q.sock")); err == nil || !strings.Contains(err.Error(), "is open to other users") || !strings.Contains(err.Error(), "chmod 700") {
				t.Fatalf("got %v, want an open-to-others error saying chmod 700", err)
			}
		})
	}
	t.Run("a symlinked directory", func(t *testing.T) {
		dir := testenv.ShortTempDir(t)
		link := filepath.Join(dir, "link")
		os.Symlink(dir, link)
		if _, err := Listen(filepath.Join(link, "q.sock")); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("got %v, want a not-a-directory error", err)
		}
	})
	t.Run("a directory of another user", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("needs root to chown")
		}
		dir := filepath.Join(testenv.ShortTempDir(t), "other")
		os.Mkdir(dir, 0o700)
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		_, err := Listen(filepath.Join(dir, "q.sock"))
		var ue *UntrustedError
		if !errors.As(err, &ue) || ue.Owner != 65534 || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Fatalf("got %v, want an *UntrustedError saying it belongs to uid 65534", err)
		}
	})
}

// TestMain doubles as the foreign daemon of TestDialRefusesForeignDaemon:
// the test binary re-runs itself as nobody.
func TestMain(m *testing.M) {
	if path := os.Getenv("QB_FOREIGN_DAEMON"); path != "" {
		os.Exit(foreignDaemon(path))
	}
	os.Exit(m.Run())
}

// foreignDaemon listens on path, says so on stdout, and accepts until it is
// killed, as a fake daemon of another user would.
func foreignDaemon(path string) int {
	ln, err := net.Listen("unix", path)
	if err != nil {
		fmt.Println("listen:", err)
		return 1
	}
	os.Chmod(path, 0o666)
	fmt.Println("ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
		c.Close()
	}
}

func TestDialChecksTheDirectory(t *testing.T) {
	serve := func(t *testing.T, path string) {
		ln, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	t.Run("this user's private directory", func(t *testing.T) {
		path := filepath.Join(testenv.ShortTempDir(t), "q.sock")
		serve(t, path)
		c, err := Dial(context.Background(), path)
		if err != nil {
			t.Fatalf("Dial of our own daemon: %v", err)
		}
		c.Close()
	})
	t.Run("a directory opened up after the daemon started", func(t *testing.T) {
		dir := testenv.ShortTempDir(t)
		path := filepath.Join(dir, "q.sock")
		serve(t, path)
		os.Chmod(dir, 0o755)
		_, err := Dial(context.Background(), path)
		var ue *UntrustedError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "open to other users (mode -rwxr-xr-x)") {
			t.Fatalf("Dial into a 0755 directory: %v, want an *UntrustedError naming the mode", err)
		}
	})
	t.Run("no daemon", func(t *testing.T) {
		path := filepath.Join(testenv.ShortTempDir(t), "q.sock")
		if _, err := Dial(context.Background(), path); err == nil || !strings.Contains(err.Error(), "quotabar serve") {
			t.Fatalf("Dial without a daemon: %v, want an error saying how to start one", err)
		}
	})
	t.Run("a directory squatted by another user", func(t *testing.T) {
		if os.Getuid() != 0 {
			testenv.Missing(t, "needs root to make a directory of nobody's")
		}
		dir := filepath.Join(testenv.ShortTempDir(t), "quotabar-0")
		os.Mkdir(dir, 0o700)
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		_, err := Dial(context.Background(), filepath.Join(dir, "quotabar.sock"))
		var ue *UntrustedError
		if !errors.As(err, &ue) || ue.Owner != 65534 || !strings.Contains(err.Error(), "belongs to uid 65534 (nobody)") || !strings.Contains(err.Error(), "rm -rf "+dir) {
			t.Fatalf("Dial into nobody's directory: %v, want an *UntrustedError naming nobody and saying what to remove", err)
		}
	})
}

// TestDialRefusesForeignDaemon puts a socket served by nobody into a private
// directory of ours: the directory passes, the peer check must not.
func TestDialRefusesForeignDaemon(t *testing.T) {
	if os.Getuid() != 0 {
		testenv.Missing(t, "needs root to run a daemon as nobody")
	}
	theirs := filepath.Join(testenv.ShortTempDir(t), "theirs")
	os.Mkdir(theirs, 0o777)
	os.Chmod(theirs, 0o777)
	os.Chmod(filepath.Dir(theirs), 0o755)
	theirSock := filepath.Join(theirs, "q.sock")
	cmd := testenv.NobodyCommand(t, "QB_FOREIGN_DAEMON="+theirSock)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("foreign daemon: %q", line)
	}
	ours := testenv.ShortTempDir(t)
	path := filepath.Join(ours, "quotabar.sock")
	if err := os.Rename(theirSock, path); err != nil {
		t.Fatal(err)
	}
	_, err = Dial(context.Background(), path)
	var ue *UntrustedError
	if !errors.As(err, &ue) || ue.Owner != 65534 || !strings.Contains(err.Error(), "runs as uid 65534 (nobody)") || !strings.Contains(err.Error(), "pid "+strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("Dial of nobody's daemon: %v, want an *UntrustedError naming nobody and its pid", err)
	}
	// The same through the HTTP transport every client uses: nothing is sent.
	hc := &http.Client{Transport: Transport(path)}
	if _, err := hc.Get("http://quotabar/v1/status"); !errors.As(err, &ue) {
		t.Fatalf("HTTP over the transport: %v, want the *UntrustedError", err)
	}
}
