package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// hookOutputMax bounds what is kept of a hook's output for the log.
const hookOutputMax = 4 << 10

// hook runs command with sh -c, the event as JSON on stdin and
// QUOTABAR_EVENT and QUOTABAR_SERVICE in its environment. ctx's deadline
// kills the hook and everything it started.
func (w *Watcher) hook(ctx context.Context, command string, ev Event) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encoding the event: %w", err)
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Stdin = bytes.NewReader(append(data, '\n'))
	cmd.Env = append(os.Environ(), "QUOTABAR_EVENT="+string(ev.Event), "QUOTABAR_SERVICE="+ev.Service)
	out := &limitedBuffer{max: hookOutputMax}
	cmd.Stdout, cmd.Stderr = out, out
	killGroup(cmd)
	// A hook's children may keep its output pipe open after it is
	// killed; Wait gives up on them after this.
	cmd.WaitDelay = time.Second
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("hook %q killed after %v (its timeout): %w; output: %s", command, took, ctx.Err(), out.String())
	case err != nil:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("hook %q exited with status %d after %v; output: %s", command, exit.ExitCode(), took, out.String())
		}
		return fmt.Errorf("hook %q: %w", command, err)
	}
	w.log.Debug("hook ran", "event", ev.Event, "service", ev.Service, "took", took, "output", out.String())
	return nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string { return strings.TrimSpace(b.buf.String()) }
