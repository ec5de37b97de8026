//go:build linux

package webfallback

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quotabar/quotabar/internal/testenv"
)

// TestNamespaceHelperAsNobody runs the namespace helper the way a daemon
// that is not root does (in a user namespace of its own), as uid nobody,
// with a stand-in driver (the test binary) that fetches a page of the
// host's 127.0.0.1 through the browser's proxy: the driver answers through
// driver.sock, keeps its uid, cannot be reached on the host's loopback, and
// its page loads through the egress proxy; stop leaves nothing behind.
func TestNamespaceHelperAsNobody(t *testing.T) {
	needRoot(t)
	dir := shortDir(t)
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	site := testSite(t)
	out := runAsNobody(t, "QB_NS_SELFTEST_DIR="+dir, "QB_NS_SELFTEST_URL="+site.URL+"/page/through-the-proxy")
	var r struct {
		UID        int
		Err        string
		NoNS       bool `json:"no_ns"`
		Isolated   bool
		OwnNetns   bool   `json:"own_netns"`
		DriverUID  string `json:"driver_uid"`
		Fetched    string
		HostDial   bool   `json:"host_dial"`
		StopErr    string `json:"stop_err"`
		Left       []string
		SocketLeft bool `json:"socket_left"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
		t.Fatalf("self-test output %q: %v", out, err)
	}
	if r.UID != 65534 {
		t.Fatalf("the self-test ran as uid %d, want 65534", r.UID)
	}
	if r.NoNS {
		testenv.Missing(t, "the kernel refuses uid nobody a user and network namespace: %s", r.Err)
	}
	if r.Err != "" {
		t.Fatalf("isolatedDriver as nobody: %s", r.Err)
	}
	for _, c := range []struct {
		ok   bool
		what string
	}{
		{r.Isolated && r.OwnNetns, "the driver runs in a network namespace of its own"},
		{r.DriverUID == "65534", "the driver keeps the uid of its user (got " + r.DriverUID + ")"},
		{strings.Contains(r.Fetched, "<title>through-the-proxy</title>"), "the driver's page of the host's 127.0.0.1 loads through the proxy (got " + r.Fetched + ")"},
		{!r.HostDial, "the driver's port is not reachable on the host's 127.0.0.1"},
		{r.StopErr == "" && len(r.Left) == 0 && !r.SocketLeft, fmt.Sprintf("stop ends every process and removes the sockets (err %q, left %v, socket %v)", r.StopErr, r.Left, r.SocketLeft)},
	} {
		if !c.ok {
			t.Errorf("want: %s", c.what)
		}
	}
}

// TestNamespaceRefusedFallsBack: where the kernel refuses the namespace
// (here: nobody asks to be uid 0 of the host in it, which the kernel
// refuses writing uid_map), the driver is started on the host's loopback
// as before, with a warning that says so.
func TestNamespaceRefusedFallsBack(t *testing.T) {
	needRoot(t)
	dir := shortDir(t)
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	out := runAsNobody(t, "QB_NS_SELFTEST_DIR="+dir, "QB_NS_SELFTEST_REFUSE=1")
	var r struct {
		UID       int
		Err       string
		Isolated  bool
		DriverUID string `json:"driver_uid"`
		HostDial  bool   `json:"host_dial"`
		Log       string
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
		t.Fatalf("self-test output %q: %v", out, err)
	}
	if r.UID != 65534 || r.Err != "" {
		t.Fatalf("the fallback as uid %d: %s", r.UID, r.Err)
	}
	if r.Isolated || r.DriverUID != "65534" || !r.HostDial {
		t.Fatalf("isolated=%v driver_uid=%q host_dial=%v, want a driver on the host's loopback that answers", r.Isolated, r.DriverUID, r.HostDial)
	}
	if !strings.Contains(r.Log, "level=WARN") || !strings.Contains(r.Log, "private network namespace") || !strings.Contains(r.Log, "operation not permitted") {
		t.Fatalf("the log %q does not warn that the namespace was refused and why", r.Log)
	}
}

// nsSelftestMain is the test binary as uid nobody for
// TestNamespaceHelperAsNobody and TestNamespaceRefusedFallsBack; it prints
// one JSON line.
func nsSelftestMain(dir, page string) int {
	out := map[string]any{"uid": os.Getuid()}
	if os.Getenv("QB_NS_SELFTEST_REFUSE") != "" {
		return nsRefusedMain(out, dir)
	}
	defer func() {
		b, _ := json.Marshal(out)
		fmt.Println(string(b))
	}()
	self, err := os.Executable()
	if err != nil {
		out["err"] = err.Error()
		return 0
	}
	os.Setenv("QB_FAKE_DRIVER", "1") // the helper's child is the stand-in driver
	d := webkitDriver{path: self, args: func(port int) []string { return []string{"--port=" + strconv.Itoa(port)} }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := isolatedDriver(ctx, slog.New(slog.DiscardHandler), d, dir)
	if err != nil {
		out["err"], out["no_ns"] = err.Error(), errors.Is(err, errNoNamespace)
		return 0
	}
	pid := w.cmd.Process.Pid
	out["isolated"] = w.isolated
	mine, _ := os.Readlink("/proc/self/ns/net")
	theirs, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	out["own_netns"] = theirs != "" && theirs != mine
	get := func(path string) string {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.driverURL+path, nil)
		resp, err := w.client.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return string(b)
	}
	out["driver_uid"] = get("/uid")
	out["fetched"] = get("/fetch?" + url.Values{"url": {page}, "proxy": {w.proxyURL}}.Encode())
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(w.driverURL, "http://"), time.Second); err == nil {
		c.Close()
		out["host_dial"] = true
	}
	if err := w.stop(); err != nil {
		out["stop_err"] = err.Error()
	}
	out["left"] = browserProcesses(pid)
	for _, s := range []string{driverSocket(dir), egressSocket(dir)} {
		if _, err := os.Lstat(s); err == nil {
			out["socket_left"] = true
		}
	}
	return 0
}

// nsRefusedMain starts the stand-in driver with namespace attributes the
// kernel refuses and reports where it ended up.
func nsRefusedMain(out map[string]any, dir string) int {
	defer func() {
		b, _ := json.Marshal(out)
		fmt.Println(string(b))
	}()
	nsAttr = func() *syscall.SysProcAttr {
		a := nsSysProcAttr()
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}}
		return a
	}
	self, err := os.Executable()
	if err != nil {
		out["err"] = err.Error()
		return 0
	}
	os.Setenv("QB_FAKE_DRIVER", "1")
	d := webkitDriver{path: self, args: func(port int) []string { return []string{"--port=" + strconv.Itoa(port)} }}
	var logBuf strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := startDriver(ctx, slog.New(slog.NewTextHandler(&logBuf, nil)), d, dir)
	out["log"] = logBuf.String()
	if err != nil {
		out["err"] = err.Error()
		return 0
	}
	defer w.stop()
	out["isolated"] = w.isolated
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.driverURL+"/uid", nil)
	if resp, err := w.client.Do(req); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out["driver_uid"] = string(b)
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(w.driverURL, "http://"), time.Second); err == nil {
		c.Close()
		out["host_dial"] = true
	}
	return 0
}

// fakeDriverMain stands in for WebKitWebDriver inside the namespace: on
// 127.0.0.1:--port it answers /uid with its uid and /fetch?url=U&proxy=P
// with the body of U fetched through the HTTP proxy P, as MiniBrowser
// loads a page.
func fakeDriverMain(args []string) int {
	port := ""
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--port="); ok {
			port = v
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/uid", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, os.Getuid()) })
	mux.HandleFunc("/fetch", func(w http.ResponseWriter, r *http.Request) {
		proxy, err := url.Parse(r.FormValue("proxy"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
		resp, err := c.Get(r.FormValue("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	})
	http.Serve(ln, mux)
	return 0
}

// namespacePorts returns the ports that the driver's group pgid listens on
// in its own network namespace, after checking that they are the driver's,
// the helper's proxy port and MiniBrowser's inspector, and that the
// inspector accepts a connection there (so that a refusal from the host is
// the namespace's doing).
func namespacePorts(t *testing.T, pid int) []int {
	t.Helper()
	nsPorts := listeningPortsIn(t, fmt.Sprintf("/proc/%d/net", pid), -pid)
	inspector := inspectorPort(t, pid)
	t.Logf("the driver's namespace listens on %v (inspector %d)", nsPorts, inspector)
	for _, p := range []int{nsDriverPort, nsProxyPort, inspector} {
		if !slices.Contains(nsPorts, p) {
			t.Fatalf("port %d is not among the listeners %v of the driver's namespace", p, nsPorts)
		}
	}
	if err := dialInNetns(pid, inspector); err != nil {
		t.Fatalf("the inspector port %d refuses inside the driver's namespace: %v", inspector, err)
	}
	return nsPorts
}

// miniBrowserEnv returns the environment of MiniBrowser: the process of group
// pgid (MiniBrowser and its helpers) that has WEBKIT_INSPECTOR_SERVER set.
func miniBrowserEnv(t *testing.T, pgid int) map[string]string {
	t.Helper()
	for _, p := range groupMembers(pgid) {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p))
		if err != nil {
			continue
		}
		env := map[string]string{}
		for kv := range strings.SplitSeq(string(data), "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
		if _, ok := env["WEBKIT_INSPECTOR_SERVER"]; ok {
			return env
		}
	}
	t.Fatalf("no process of group %d has WEBKIT_INSPECTOR_SERVER set", pgid)
	return nil
}

// inspectorPort returns the port of MiniBrowser's WEBKIT_INSPECTOR_SERVER.
// It also checks that, with no session bus here, the browser was pointed at
// none: GTK would otherwise autolaunch a bus, an accessibility bus and
// xdg-desktop-portal that outlive it.
func inspectorPort(t *testing.T, pgid int) int {
	t.Helper()
	env := miniBrowserEnv(t, pgid)
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" && (env["DBUS_SESSION_BUS_ADDRESS"] != noSessionBus || env["NO_AT_BRIDGE"] != "1") {
		t.Errorf("MiniBrowser's DBUS_SESSION_BUS_ADDRESS=%q NO_AT_BRIDGE=%q, want %q and 1: without them it autolaunches buses that outlive it", env["DBUS_SESSION_BUS_ADDRESS"], env["NO_AT_BRIDGE"], noSessionBus)
	}
	_, port, _ := net.SplitHostPort(env["WEBKIT_INSPECTOR_SERVER"])
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("WEBKIT_INSPECTOR_SERVER=%q", env["WEBKIT_INSPECTOR_SERVER"])
	}
	return n
}

// dialInNetns connects to 127.0.0.1:port in the network namespace of pid,
// from a thread that joins it and then returns to the test's namespace.
// The thread must not exit instead: it may be the one that started the
// driver, whose parent-death signal follows the thread, not the process.
func dialInNetns(pid, port int) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer home.Close()
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("joining the namespace: %w", err)
			return
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 3*time.Second)
		if err == nil {
			c.Close()
		}
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread() // else the thread stays locked and exits with the goroutine
		}
		errc <- err
	}()
	return <-errc
}
