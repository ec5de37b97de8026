package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc/internal/ipctest"
)

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
	d := ipctest.StartDaemon(t, ipctest.TestConfig(), nil)
	// For this test only, let nobody reach the socket: the daemon's own
	// check is what must stop it.
	dir := filepath.Dir(d.Path)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d.Path, 0o666); err != nil {
		t.Fatal(err)
	}
	cmd := testenv.NobodyCommand(t, "QB_FOREIGN_CLIENT="+d.Path)
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
	// (Our own client talks only through a private directory: close it
	// again first.)
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := d.Client.Status(context.Background())
	if err != nil {
		t.Fatalf("daemon stopped serving its own user: %v", err)
	}
	if _, ok := ipctest.AgentOf(st, "intruder"); ok {
		t.Error("the foreign client's request was read: agent intruder exists")
	}
	if g := ipctest.ServiceOf(t, st, "openai").Counters.Granted; g != 0 {
		t.Errorf("openai granted %d, want 0", g)
	}
}
