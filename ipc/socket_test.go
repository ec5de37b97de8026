package ipc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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
	dir := filepath.Join(shortDir(t), "sub")
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
	path := filepath.Join(shortDir(t), "q.sock")
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
	dir := shortDir(t)
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
	c := &Client{SocketPath: tooLong}
	if err := c.Health(context.Background()); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("client of a %d-byte path: %v; want an error saying %q", len(tooLong), err, want)
	}
}

func TestListenRefuses(t *testing.T) {
	t.Run("a file that is not a socket", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "q.sock")
		os.WriteFile(path, []byte("keep me"), 0o600)
		if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("got %v, want a not-a-socket error", err)
		}
		if data, _ := os.ReadFile(path); string(data) != "keep me" {
			t.Error("the file was changed")
		}
	})
	t.Run("a directory writable by others", func(t *testing.T) {
		dir := shortDir(t)
		os.Chmod(dir, 0o777)
		if _, err := Listen(filepath.Join(dir, "q.sock")); err == nil || !strings.Contains(err.Error(), "writable by other users") {
			t.Fatalf("got %v, want a writable-by-others error", err)
		}
	})
	t.Run("a symlinked directory", func(t *testing.T) {
		dir := shortDir(t)
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
		dir := filepath.Join(shortDir(t), "other")
		os.Mkdir(dir, 0o700)
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := Listen(filepath.Join(dir, "q.sock")); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Fatalf("got %v, want a belongs-to-another-uid error", err)
		}
	})
}

// TestMain doubles as the foreign client of TestOtherUserRefused: the test
// binary re-runs itself as nobody.
func TestMain(m *testing.M) {
	if path := os.Getenv("QB_FOREIGN_CLIENT"); path != "" {
		os.Exit(foreignClient(path))
	}
	os.Exit(m.Run())
}

// foreignClient connects twice: once sending nothing, once sending a whole
// acquire, and prints what it read each time, quoted, one per line.
func foreignClient(path string) int {
	read := func(send string) string {
		c, err := net.Dial("unix", path)
		if err != nil {
			return "dial: " + err.Error()
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if send != "" {
			// A write may fail once the daemon has closed: the answer is
			// already in our receive buffer either way.
			io.WriteString(c, send)
		}
		data, err := io.ReadAll(c)
		if err != nil && len(data) == 0 {
			return "read: " + err.Error()
		}
		return string(data)
	}
	body := `{"agent":"intruder","service":"openai","max_wait_ms":0}`
	req := "POST /v1/acquire HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body
	fmt.Println(strconv.Quote(read("")))
	fmt.Println(strconv.Quote(read(req)))
	return 0
}

func TestOtherUserRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as nobody")
	}
	d := startDaemon(t, testConfig(), nil)
	// For this test only, let nobody reach the socket: the daemon's own
	// check is what must stop it.
	dir := filepath.Dir(d.path)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d.path, 0o666); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), "QB_FOREIGN_CLIENT="+d.path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("foreign client: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for i, what := range []string{"connection that sent nothing", "connection that sent an acquire"} {
		if !sc.Scan() {
			t.Fatalf("foreign client printed %q", out)
		}
		got, err := strconv.Unquote(sc.Text())
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if !strings.HasPrefix(got, "HTTP/1.1 403 Forbidden\r\n") || !strings.Contains(got, `"code":"forbidden"`) {
			t.Errorf("%s: got %q, want a 403 forbidden", what, got)
		}
	}
	// The acquire was never read: nothing was granted and no agent exists.
	st, err := d.client.Status(context.Background())
	if err != nil {
		t.Fatalf("daemon stopped serving its own user: %v", err)
	}
	if _, ok := agentOf(st, "intruder"); ok {
		t.Error("the foreign client's request was read: agent intruder exists")
	}
	if g := serviceOf(t, st, "openai").Counters.Granted; g != 0 {
		t.Errorf("openai granted %d, want 0", g)
	}
}
