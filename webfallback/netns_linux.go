package webfallback

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The WebKit driver and MiniBrowser run in a network namespace of their
// own (Linux), so that their TCP ports — the driver's WebDriver port and
// the inspector server that WebKitWebDriver makes MiniBrowser open without
// authentication (WEBKIT_INSPECTOR_SERVER) — exist only inside it, where no
// other process can connect. The daemon reaches them through pathname Unix
// sockets, which are not namespaced, in the service's 0700 directory:
//
//	relay ─▶ driver.sock ─▶ helper ─▶ 127.0.0.1:nsDriverPort (driver)
//	MiniBrowser ─▶ 127.0.0.1:nsProxyPort ─▶ helper ─▶ egress.sock ─▶ daemon's proxy ─▶ the network
//
// The helper is this same executable, re-executed in the namespace in the
// mode that nsHelperEnv selects (see init below); users need nothing extra.

const (
	// nsHelperEnv carries the helper's nsSpec in JSON; its presence (with
	// argv[0] nsHelperName) turns the process into the namespace helper.
	nsHelperEnv  = "QUOTABAR_WEBKIT_NETNS"
	nsHelperName = "quotabar-webkit-netns"
	// The namespace is private and empty, so fixed ports cannot clash.
	nsDriverPort = 4444
	nsProxyPort  = 3128
	// nsSetupFailed is the helper's exit code when the namespace itself
	// cannot be set up (loopback, listeners): the daemon falls back.
	nsSetupFailed = 3
)

// nsSpec is what the daemon tells the helper.
type nsSpec struct {
	Dir    string   `json:"dir"`    // holds driver.sock and egress.sock
	Driver string   `json:"driver"` // WebKitWebDriver
	Args   []string `json:"args"`
}

func driverSocket(dir string) string { return filepath.Join(dir, "driver.sock") }
func egressSocket(dir string) string { return filepath.Join(dir, "egress.sock") }

// init runs the namespace helper when this process is one, in any binary
// that links the package (the daemon, the test binary), so that no main
// package has to dispatch it.
func init() {
	spec := os.Getenv(nsHelperEnv)
	if spec == "" || len(os.Args) == 0 || os.Args[0] != nsHelperName {
		return
	}
	os.Exit(nsHelperMain(spec))
}

// nsHelperMain is the helper inside the namespace: it brings loopback up,
// forwards the browser's proxy port to the daemon's egress socket, starts
// the driver, serves driver.sock once the driver listens, and exits with
// the driver.
func nsHelperMain(specJSON string) int {
	fail := func(code int, format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "quotabar webkit namespace: "+format+"\n", args...)
		return code
	}
	var spec nsSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fail(nsSetupFailed, "reading the spec: %v", err)
	}
	os.Unsetenv(nsHelperEnv)
	if err := loopbackUp(); err != nil {
		return fail(nsSetupFailed, "bringing up loopback: %v", err)
	}
	proxyLn, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(nsProxyPort))
	if err != nil {
		return fail(nsSetupFailed, "listening for the browser's proxy: %v", err)
	}
	go forward(proxyLn, func() (net.Conn, error) { return net.Dial("unix", egressSocket(spec.Dir)) })

	// SIGTERM reaches the driver from the group signal too: wait for it to
	// exit rather than die first and SIGKILL it through its parent-death
	// signal before it closed the browser.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGTERM, syscall.SIGINT)
	cmd := exec.Command(spec.Driver, spec.Args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fail(1, "starting %s: %v", spec.Driver, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	addr := "127.0.0.1:" + strconv.Itoa(nsDriverPort)
	ready := waitUntil(context.Background(), driverStartWait, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		c, err := net.DialTimeout("tcp", addr, probeWait)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	select {
	case <-exited:
		return fail(1, "%s exited: %v", spec.Driver, cmd.ProcessState)
	default:
	}
	if !ready {
		cmd.Process.Kill()
		return fail(1, "%s did not listen on %s", spec.Driver, addr)
	}
	sock := driverSocket(spec.Dir)
	os.Remove(sock)
	driverLn, err := net.Listen("unix", sock)
	if err != nil {
		cmd.Process.Kill()
		return fail(1, "listening on %s: %v", sock, err)
	}
	go forward(driverLn, func() (net.Conn, error) { return net.Dial("tcp", addr) })
	<-exited
	driverLn.Close()
	os.Remove(sock)
	if st := cmd.ProcessState; st != nil && st.ExitCode() > 0 {
		return st.ExitCode()
	}
	return 0
}

// forward copies every connection of ln to a new connection from dial,
// both ways, until either side closes.
func forward(ln net.Listener, dial func() (net.Conn, error)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			d, err := dial()
			if err != nil {
				return
			}
			defer d.Close()
			splice(c, d)
		}()
	}
}

// loopbackUp sets the IFF_UP flag of lo (a new network namespace has it
// down), which needs CAP_NET_ADMIN in the namespace's user namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading the flags of lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("setting lo up: %w", err)
	}
	return nil
}

// nsSysProcAttr starts the helper in a new network namespace: as root
// directly, otherwise inside a new user namespace that maps only this
// user's uid and gid (so that the processes keep their identity) and gives
// the helper CAP_NET_ADMIN there, which it needs for loopback and which
// grants nothing outside the namespace. The helper is a group of its own
// (stop signals the group) and dies with us.
func nsSysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Cloneflags: syscall.CLONE_NEWNET}
	if uid := os.Getuid(); uid != 0 {
		gid := os.Getgid()
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
		attr.GidMappingsEnableSetgroups = false
		attr.AmbientCaps = []uintptr{unix.CAP_NET_ADMIN}
	}
	return attr
}

// nsAttr is nsSysProcAttr; a test swaps in attributes the kernel refuses,
// to see the fallback.
var nsAttr = nsSysProcAttr

// socketDir returns dir when the helper's socket paths fit in a sockaddr_un
// (108 bytes), else a new private directory under the temporary directory.
func socketDir(dir string) (string, func(), error) {
	if len(driverSocket(dir)) < 100 && len(egressSocket(dir)) < 100 {
		return dir, func() {}, nil
	}
	d, err := os.MkdirTemp("", "qbwk")
	if err != nil {
		return "", nil, fmt.Errorf("creating a directory for the webkit sockets: %w", err)
	}
	return d, func() { os.RemoveAll(d) }, nil
}

// isolatedDriver starts the driver in a private network namespace through
// the helper and returns it once driver.sock answers. It returns an error
// wrapping errNoNamespace when the kernel or the machine's policy refuses
// the namespace, so that the caller can fall back.
func isolatedDriver(ctx context.Context, log *slog.Logger, d webkitDriver, dir string) (*webkitSession, error) {
	sdir, cleanup, err := socketDir(dir)
	if err != nil {
		return nil, err
	}
	egressPath := egressSocket(sdir)
	os.Remove(egressPath)
	egressLn, err := net.Listen("unix", egressPath)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("listening on %s for the browser's traffic: %w", egressPath, err)
	}
	egress := newEgressProxy(egressLn, log)
	spec, _ := json.Marshal(nsSpec{Dir: sdir, Driver: d.path, Args: d.args(nsDriverPort)})
	w := &webkitSession{
		driverURL: "http://127.0.0.1:" + strconv.Itoa(nsDriverPort),
		exited:    make(chan struct{}),
		output:    &tailBuffer{max: 4096},
		isolated:  true,
		proxyURL:  "http://127.0.0.1:" + strconv.Itoa(nsProxyPort),
	}
	sock := driverSocket(sdir)
	os.Remove(sock)
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     relayIdleTimeout,
	}
	w.transport, w.client = tr, &http.Client{Transport: tr}
	w.cleanup = func() {
		egress.Close()
		tr.CloseIdleConnections()
		os.Remove(egressPath)
		os.Remove(sock)
		cleanup()
	}
	w.cmd = exec.Command("/proc/self/exe")
	w.cmd.Args = []string{nsHelperName}
	w.cmd.Env = append(browserEnv(), nsHelperEnv+"="+string(spec))
	w.cmd.Stdout, w.cmd.Stderr = w.output, w.output
	w.cmd.SysProcAttr = nsAttr()
	if err := w.cmd.Start(); err != nil {
		w.cleanup()
		return nil, fmt.Errorf("%w: %w", errNoNamespace, err)
	}
	if w.waitStarted(ctx, driverStartWait+time.Second, "unix", sock) {
		return w, nil
	}
	w.stop()
	if st := w.cmd.ProcessState; st != nil && st.ExitCode() == nsSetupFailed {
		return nil, fmt.Errorf("%w: %s", errNoNamespace, w.output.String())
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("%s did not answer in its network namespace: %s", d.path, w.output.String())
}
