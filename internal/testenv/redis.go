package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Redis is a redis-server started by a test on a Unix socket in the test's
// temp dir, without persistence (a restart loses the data, as in the fault
// tests), and killed at cleanup.
type Redis struct {
	t        testing.TB
	bin      string
	dir      string
	Socket   string // path of the Unix socket
	Password string // requirepass, "" for none
	cmd      *exec.Cmd
}

// StartRedis starts a redis-server, with requirepass when password is not
// empty. Without redis-server the test skips, or fails when tools are
// required.
func StartRedis(t testing.TB, password string) *Redis {
	t.Helper()
	bin := LookPath(t, "redis-server")
	dir, err := os.MkdirTemp("", "qbredis")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := &Redis{t: t, bin: bin, dir: dir, Socket: filepath.Join(dir, "redis.sock"), Password: password}
	r.Start()
	t.Cleanup(r.Kill)
	return r
}

// URL is the redis URL of the server, with the password in it when withPW.
func (r *Redis) URL(withPW bool) string {
	if withPW && r.Password != "" {
		return "unix://:" + r.Password + "@" + r.Socket
	}
	return "unix://" + r.Socket
}

// Start starts the server (again, after Kill: with no data) and waits until
// it answers PING.
func (r *Redis) Start() {
	r.t.Helper()
	os.Remove(r.Socket)
	args := []string{"--port", "0", "--unixsocket", r.Socket, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--loglevel", "warning", "--logfile", filepath.Join(r.dir, "redis.log")}
	if r.Password != "" {
		args = append(args, "--requirepass", r.Password)
	}
	cmd := exec.Command(r.bin, args...)
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("starting redis-server: %v", err)
	}
	r.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := r.ping(); err == nil {
			return
		} else if time.Now().After(deadline) {
			r.t.Fatalf("redis-server did not answer PING within 10s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *Redis) ping() error {
	c, err := net.DialTimeout("unix", r.Socket, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	cmd := "PING\r\n"
	if r.Password != "" {
		cmd = fmt.Sprintf("AUTH %s\r\nPING\r\n", r.Password)
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.HasPrefix(line, "+PONG") {
			return nil
		}
		if strings.HasPrefix(line, "-") {
			return fmt.Errorf("redis: %s", strings.TrimSpace(line))
		}
	}
}

// Stop sends SIGSTOP: the server keeps its sockets but answers nothing.
func (r *Redis) Stop() { r.signal(syscall.SIGSTOP) }

// Continue sends SIGCONT after Stop.
func (r *Redis) Continue() { r.signal(syscall.SIGCONT) }

func (r *Redis) signal(s syscall.Signal) {
	r.t.Helper()
	if r.cmd == nil {
		r.t.Fatal("redis-server is not running")
	}
	if err := r.cmd.Process.Signal(s); err != nil {
		r.t.Fatalf("signal %v to redis-server: %v", s, err)
	}
}

// Kill kills the server with SIGKILL (its data is lost) and waits for it.
func (r *Redis) Kill() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGCONT)
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}
