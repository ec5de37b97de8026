package webfallback

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/quotabar/quotabar/internal/testenv"
)

// probe tries, on 127.0.0.1:port under the path prefix, every way in that
// the DevTools HTTP/WebSocket endpoints and a WebDriver server offer, and
// returns the ones that let it in. sessionID, if set, is a WebDriver session
// to try to read the cookies of.
func probe(port int, prefix, sessionID string) []string {
	base := "http://127.0.0.1:" + strconv.Itoa(port) + prefix
	client := &http.Client{Timeout: 3 * time.Second}
	get := func(method, path, body string) (int, string) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			return 0, ""
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(b)
	}
	var in []string
	wsURLs := []string{"ws://127.0.0.1:" + strconv.Itoa(port) + prefix + "/devtools/browser/x"}
	if st, b := get("GET", "/json/version", ""); st == 200 && strings.Contains(b, "webSocketDebuggerUrl") {
		in = append(in, "devtools /json/version")
		var v struct{ WebSocketDebuggerURL string }
		if json.Unmarshal([]byte(b), &v) == nil && strings.HasPrefix(v.WebSocketDebuggerURL, "ws://127.0.0.1:"+strconv.Itoa(port)+"/") {
			wsURLs = append(wsURLs, v.WebSocketDebuggerURL)
		}
	}
	for _, p := range []string{"/json", "/json/list"} {
		if st, b := get("GET", p, ""); st == 200 && strings.HasPrefix(strings.TrimSpace(b), "[") {
			in = append(in, "devtools "+p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, u := range wsURLs {
		c, _, err := websocket.Dial(ctx, u, nil)
		if err != nil {
			continue
		}
		if c.Write(ctx, websocket.MessageText, []byte(`{"id":1,"method":"Browser.getVersion"}`)) == nil {
			if _, b, err := c.Read(ctx); err == nil && strings.Contains(string(b), `"result"`) {
				in = append(in, "devtools websocket")
				c.CloseNow()
				break
			}
		}
		c.CloseNow()
	}
	if st, b := get("POST", "/session", `{"capabilities":{}}`); st == 200 && strings.Contains(b, "sessionId") {
		in = append(in, "webdriver new session")
	}
	if sessionID != "" {
		if st, _ := get("GET", "/session/"+sessionID+"/cookie", ""); st == 200 {
			in = append(in, "webdriver session cookies")
		}
	}
	return in
}

// probeMain is the test binary run as nobody: it probes every port of
// QB_PROBE_PORTS without a prefix and with a made-up secret, and prints one
// JSON line per port.
func probeMain(ports, sessionID string) int {
	for p := range strings.SplitSeq(ports, ",") {
		port, err := strconv.Atoi(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		var in []string
		for _, prefix := range []string{"", "/" + newSecret(), "/x"} {
			in = append(in, probe(port, prefix, sessionID)...)
		}
		b, _ := json.Marshal(map[string]any{"port": port, "uid": os.Getuid(), "in": in})
		fmt.Println(string(b))
	}
	return 0
}

// listeningPorts returns the TCP ports that the processes pids (and, for
// negative entries, the process groups) listen on in the test's own
// network namespace, read from /proc: the socket inodes of their
// descriptors matched with the LISTEN lines of /proc/net/tcp and tcp6.
func listeningPorts(t testing.TB, pids ...int) []int {
	t.Helper()
	return listeningPortsIn(t, "/proc/net", pids...)
}

// listeningPortsIn is listeningPorts in the network namespace whose tables
// are in netDir (/proc/PID/net shows the namespace of PID).
func listeningPortsIn(t testing.TB, netDir string, pids ...int) []int {
	t.Helper()
	inodes := map[string]bool{}
	var all []int
	for _, p := range pids {
		if p > 0 {
			all = append(all, p)
			continue
		}
		all = append(all, groupMembers(-p)...)
	}
	for _, pid := range all {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err == nil && strings.HasPrefix(l, "socket:[") {
				inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
			}
		}
	}
	var ports []int
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(filepath.Join(netDir, f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != "0A" || !inodes[fs[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(fs[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); err == nil && !slices.Contains(ports, int(p)) {
				ports = append(ports, int(p))
			}
		}
	}
	slices.Sort(ports)
	return ports
}

// groupMembers returns the processes of process group pgid.
func groupMembers(pgid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid {
			out = append(out, pid)
		}
	}
	return out
}

// runAsNobody runs the test binary as uid nobody with env and returns its
// standard output.
func runAsNobody(t *testing.T, env ...string) string {
	t.Helper()
	cmd := testenv.NobodyCommand(t, env...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("probe as nobody: %v\n%s", err, stderr)
	}
	return string(out)
}

// checkNobodyRefused probes ports as nobody and fails for every way in that
// worked; it also fails when nobody did not probe all of them.
func checkNobodyRefused(t *testing.T, ports []int, sessionID string) {
	t.Helper()
	list := make([]string, len(ports))
	for i, p := range ports {
		list[i] = strconv.Itoa(p)
	}
	out := runAsNobody(t, "QB_PROBE_PORTS="+strings.Join(list, ","), "QB_PROBE_SESSION="+sessionID)
	probed := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r struct {
			Port, UID int
			In        []string
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("probe output %q: %v", sc.Text(), err)
		}
		if r.UID != 65534 {
			t.Fatalf("the probe ran as uid %d, want 65534", r.UID)
		}
		probed++
		if len(r.In) > 0 {
			t.Errorf("uid nobody got in on port %d: %v", r.Port, r.In)
		}
	}
	if probed != len(ports) {
		t.Fatalf("nobody probed %d of the ports %v: %q", probed, ports, out)
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as uid nobody")
	}
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("reads /proc/net")
	}
}

// TestChromeRefusesOtherUser: Chrome has no TCP port at all; the relay,
// the only door, lets nobody in without the secret, while this user's
// probe with the secret gets in (so the probe can tell).
func TestChromeRefusesOtherUser(t *testing.T) {
	needRoot(t)
	m, _ := chromeManager(t)
	site := testSite(t)
	ctx := openCtx(t)
	s, err := m.Open(ctx, Target{Service: "svc", Browser: Chrome, URL: site.URL + "/page/secret", Headless: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	cb := browserOf(t, m, "svc")
	if ports := listeningPorts(t, cb.pid, -cb.pid); len(ports) > 0 {
		t.Fatalf("the browser's processes listen on TCP ports %v, want none (DevTools over the pipe only)", ports)
	}
	relayPort, _ := strconv.Atoi(cb.relay.port)
	ports := listeningPorts(t, os.Getpid())
	if !slices.Contains(ports, relayPort) {
		t.Fatalf("the relay port %d is not among the listeners %v found in /proc", relayPort, ports)
	}
	u, err := url.Parse(s.CDPURL)
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := splitSecret(u.Path)
	if got := probe(relayPort, "/"+secret, ""); !slices.Contains(got, "devtools /json/version") || !slices.Contains(got, "devtools websocket") {
		t.Fatalf("this user with the secret got in by %v, want /json/version and the websocket", got)
	}
	checkNobodyRefused(t, ports, "")
	// The agent of this user still reads the page (a real second process
	// does so in TestChromeOpenAttachFromAnotherProcess).
	if title := pageTitle(t, s); title != "secret" {
		t.Fatalf("title = %q, want secret", title)
	}
}

// TestWebKitRefusesOtherUser: the driver and MiniBrowser listen only in a
// network namespace of their own, so that neither the driver's port nor the
// browser's unauthenticated inspector can be reached from the host's
// namespace at all, by this user or by nobody; nobody can neither start a
// session nor use the session on the relay; this user with webdriver_url
// and session_id drives it.
func TestWebKitRefusesOtherUser(t *testing.T) {
	needRoot(t)
	m := webkitManager(t)
	site := testSite(t)
	ctx := openCtx(t)
	s, err := m.Open(ctx, Target{Service: "svc", Browser: WebKit, URL: site.URL + "/page/secret"})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	w := webkitOf(t, m, "svc")
	if w.id == s.SessionID {
		t.Fatal("the answer carries the driver's own session id")
	}
	if !w.isolated {
		t.Fatalf("the webkit driver runs in the host's network namespace: %s", w.output.String())
	}
	pid := w.cmd.Process.Pid
	hostNS, _ := os.Readlink("/proc/self/ns/net")
	if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err != nil || ns == hostNS {
		t.Fatalf("the driver's network namespace is %q (%v), the host's is %q", ns, err, hostNS)
	}
	relayPort, _ := strconv.Atoi(w.relay.port)
	hostPorts := listeningPorts(t, os.Getpid())
	if !slices.Contains(hostPorts, relayPort) {
		t.Fatalf("the relay port %d is not among the listeners %v found in /proc", relayPort, hostPorts)
	}
	if got := listeningPorts(t, -pid); len(got) > 0 {
		t.Fatalf("the driver's processes listen on %v in the host's network namespace, want nothing", got)
	}
	nsPorts := namespacePorts(t, pid)
	for _, p := range nsPorts {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p), time.Second); err == nil {
			c.Close()
			t.Errorf("port %d of the driver's namespace accepts a connection from the host's namespace", p)
		}
	}
	// nobody cannot even connect to them; the relay's port, which is open
	// by design, shows that nobody's connect would tell.
	connected := connectAsNobody(t, append([]int{relayPort}, nsPorts...))
	if !connected[relayPort] {
		t.Fatalf("nobody could not connect to the relay port %d either: the probe cannot tell", relayPort)
	}
	for _, p := range nsPorts {
		if connected[p] {
			t.Errorf("nobody connected to port %d of the driver's namespace", p)
		}
	}
	secret, _ := splitSecret(strings.TrimPrefix(s.WebDriverURL, "http://127.0.0.1:"+w.relay.port))
	if got := probe(relayPort, "/"+secret, s.SessionID); !slices.Contains(got, "webdriver session cookies") {
		t.Fatalf("this user with the secret got in by %v, want the session's cookies", got)
	}
	// With the secret, only the one session is reachable, and not ended.
	for _, tc := range []struct{ method, path, code string }{
		{http.MethodPost, "/session", "session not created"},
		{http.MethodDelete, "/session/" + s.SessionID, "unsupported operation"},
		{http.MethodGet, "/session/" + w.id + "/url", "invalid session id"},
	} {
		err := wd(ctx, tc.method, s.WebDriverURL+tc.path, map[string]any{"capabilities": map[string]any{}}, nil)
		if wde, ok := err.(*webdriverError); !ok || wde.Code != tc.code {
			t.Errorf("%s %s through the relay = %v, want WebDriver error %q", tc.method, tc.path, err, tc.code)
		}
	}
	// The probe as nobody also tries every port with the public id.
	checkNobodyRefused(t, append(hostPorts, nsPorts...), s.SessionID)
	if got := wdDrive(t, s, ""); got != "secret" {
		t.Fatalf("title = %q, want secret", got)
	}
}

// connectMain is the test binary run as nobody: it tries a TCP connection
// to every port of QB_CONNECT_PORTS on 127.0.0.1 and prints one JSON line
// per port.
func connectMain(ports string) int {
	for p := range strings.SplitSeq(ports, ",") {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+p, 3*time.Second)
		if err == nil {
			c.Close()
		}
		port, _ := strconv.Atoi(p)
		b, _ := json.Marshal(map[string]any{"port": port, "uid": os.Getuid(), "connected": err == nil})
		fmt.Println(string(b))
	}
	return 0
}

// connectAsNobody says, for each port, whether uid nobody could open a TCP
// connection to it on 127.0.0.1.
func connectAsNobody(t *testing.T, ports []int) map[int]bool {
	t.Helper()
	list := make([]string, len(ports))
	for i, p := range ports {
		list[i] = strconv.Itoa(p)
	}
	out := runAsNobody(t, "QB_CONNECT_PORTS="+strings.Join(list, ","))
	got := map[int]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r struct {
			Port, UID int
			Connected bool
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("connect output %q: %v", sc.Text(), err)
		}
		if r.UID != 65534 {
			t.Fatalf("the connect probe ran as uid %d, want 65534", r.UID)
		}
		got[r.Port] = r.Connected
	}
	if len(got) != len(ports) {
		t.Fatalf("nobody tried %d of the ports %v: %q", len(got), ports, out)
	}
	return got
}

// ownerMain is the test binary as the owner of a browser, for the kill -9
// test: it opens url in browser, prints what it started as one JSON line,
// and waits to be killed.
func ownerMain(dir, browser, u string) int {
	m := New(Options{Dir: dir})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	s, err := m.Open(ctx, Target{Service: "svc", Browser: browser, URL: u, Headless: true})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out := map[string]any{"cdp_url": s.CDPURL, "webdriver_url": s.WebDriverURL}
	sv := m.lookup("svc")
	sv.mu.Lock()
	if sv.chrome != nil {
		out["pid"] = sv.chrome.pid
	}
	if sv.webkit != nil {
		out["pid"] = sv.webkit.cmd.Process.Pid
		out["driver_url"] = sv.webkit.driverURL
	}
	sv.mu.Unlock()
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	select {}
}

// TestNobodyProbeGetsIntoAnOpenDevToolsPort is the control of the refusal
// tests: a Chrome started the way quotabar used to (--remote-debugging-port)
// is entered by the same probe run as nobody, so a refusal above is the
// relay's doing and not a probe that cannot get in anywhere.
func TestNobodyProbeGetsIntoAnOpenDevToolsPort(t *testing.T) {
	needRoot(t)
	_, path := chromeManager(t)
	dir := shortDir(t)
	cmd := exec.Command(path, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
		"--remote-debugging-port=0", "--user-data-dir="+dir, "about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		killGroup(cmd.Process.Pid)
		cmd.Wait()
	})
	var port int
	if !waitUntil(openCtx(t), 20*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "DevToolsActivePort"))
		if err != nil {
			return false
		}
		port, err = strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
		return err == nil
	}) {
		t.Fatal("the old-style browser wrote no DevToolsActivePort")
	}
	out := runAsNobody(t, "QB_PROBE_PORTS="+strconv.Itoa(port))
	if !strings.Contains(out, "devtools /json/version") || !strings.Contains(out, "devtools websocket") {
		t.Fatalf("nobody did not get into an open DevTools port: %s", out)
	}
}

// startOwner runs the test binary as a process that owns a browser and
// returns it with what it printed.
func startOwner(t *testing.T, browser, u string) (*exec.Cmd, map[string]any, string) {
	t.Helper()
	dir := shortDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "QB_OWNER_DIR="+dir, "QB_OWNER_BROWSER="+browser, "QB_OWNER_URL="+u)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the owner printed nothing: %v", err)
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(line), &info); err != nil {
		t.Fatalf("owner output %q: %v", line, err)
	}
	return cmd, info, dir
}

// TestBrowserDiesWithItsOwner: kill -9 (or a SIGTERM that the owner does not
// handle) of the process that started the browser leaves no browser process
// and no listening port behind.
func TestBrowserDiesWithItsOwner(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("reads /proc")
	}
	site := testSite(t)
	for _, tc := range []struct {
		browser string
		sig     syscall.Signal
	}{{Chrome, syscall.SIGKILL}, {Chrome, syscall.SIGTERM}, {WebKit, syscall.SIGKILL}, {WebKit, syscall.SIGTERM}} {
		browser := tc.browser
		t.Run(browser+"/"+tc.sig.String(), func(t *testing.T) {
			if browser == Chrome {
				chromeManager(t)
			} else {
				webkitManager(t)
			}
			owner, info, dir := startOwner(t, browser, site.URL+"/page/owned")
			pid := int(info["pid"].(float64))
			ports := listeningPorts(t, owner.Process.Pid, pid, -pid)
			if len(ports) == 0 {
				t.Fatalf("the owner listens on no port: %v", info)
			}
			if !groupAlive(pid) {
				t.Fatalf("browser %d does not run", pid)
			}
			if err := owner.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			owner.Wait()
			// No event tells another process's death: poll, bounded.
			ctx := openCtx(t)
			t.Cleanup(func() { killGroup(pid) }) // a dbus-launch, see browserProcesses
			if !waitUntil(ctx, 30*time.Second, func() bool { return len(browserProcesses(pid)) == 0 && len(processesUsing(dir)) == 0 }) {
				t.Fatalf("30s after %v of its owner, browser group %d still has %v and the profile is used by %v", tc.sig, pid, browserProcesses(pid), processesUsing(dir))
			}
			for _, p := range ports {
				if err := loopbackOnly(strconv.Itoa(p)); err == nil {
					t.Errorf("port %d still listens after %v of the owner", p, tc.sig)
				}
			}
		})
	}
}

// browserProcesses returns "pid comm" of the live (not zombie) processes of
// process group pgid, leaving out the session bus that GLib starts for
// MiniBrowser where there is none (dbus-launch, dbus-daemon): no browser,
// no DevTools or WebDriver, and it ends with the X display.
func browserProcesses(pgid int) []string {
	var out []string
	for _, p := range groupMembers(pgid) {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		open, close := strings.IndexByte(string(st), '('), strings.LastIndexByte(string(st), ')')
		if open < 0 || close < open {
			continue
		}
		comm, rest := string(st[open+1:close]), strings.Fields(string(st[close+1:]))
		if len(rest) > 0 && rest[0] == "Z" || comm == "dbus-launch" || comm == "dbus-daemon" {
			continue
		}
		out = append(out, fmt.Sprintf("%d %s", p, comm))
	}
	return out
}
