package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/server"
	"github.com/quotabar/quotabar/ipc/socket"
	"github.com/quotabar/quotabar/limiter"
)

// Daemon is quotabar's real limiter behind its real ipc server, listening on
// a Unix socket: the daemon without the app around it.
type Daemon struct {
	Limiter *limiter.Limiter
	Server  *server.Server
	Socket  string
	dir     string // removed by Close when the daemon made it
}

// StartDaemon starts a daemon for cfg on socket, or, when socket is "", on
// a socket in a new temporary directory (short, to stay under the 104-byte
// limit of socket paths).
func StartDaemon(cfg limiter.Config, path string) (*Daemon, error) {
	lim, err := limiter.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("sim: daemon config: %w", err)
	}
	d := &Daemon{Limiter: lim, Socket: path}
	if path == "" {
		d.dir, err = os.MkdirTemp("", "qb")
		if err != nil {
			lim.Close()
			return nil, fmt.Errorf("sim: socket directory: %w", err)
		}
		d.Socket = filepath.Join(d.dir, "quotabar.sock")
	}
	ln, err := socket.Listen(d.Socket)
	if err != nil {
		lim.Close()
		d.removeDir()
		return nil, err
	}
	// The daemon's logs would drown a benchmark's output; errors still
	// surface to agents as answers.
	d.Server = server.New(server.Config{Limiter: lim, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	go d.Server.Serve(ln)
	return d, nil
}

// Client returns an ipc client for the daemon that keeps up to conns
// connections open, so that many agents in one process do not redial for
// every call.
func (d *Daemon) Client(conns int) *ipc.Client {
	return &ipc.Client{SocketPath: d.Socket, HTTPClient: UnixHTTPClient(d.Socket, conns)}
}

// UnixHTTPClient is an HTTP client whose every request goes to the Unix
// socket at path (socket.Transport), keeping up to conns idle connections.
func UnixHTTPClient(path string, conns int) *http.Client {
	tr := socket.Transport(path)
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = conns, conns
	return &http.Client{Transport: tr}
}

// Close stops the server (waiters are answered 503), the limiter, and
// removes the socket directory the daemon made.
func (d *Daemon) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := d.Server.Shutdown(ctx)
	d.Limiter.Close()
	d.removeDir()
	return err
}

func (d *Daemon) removeDir() {
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
}
