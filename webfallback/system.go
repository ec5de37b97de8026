package webfallback

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// openerWait bounds the opener: xdg-open and open hand the address to the
// running browser and return; one that hangs must not hold the request.
const openerWait = 30 * time.Second

// openSystem opens u in the person's default browser.
func openSystem(ctx context.Context, u string) error {
	path, err := exec.LookPath(systemOpener)
	if err != nil {
		return &UnavailableError{Browser: System, Msg: fmt.Sprintf("%s not found on PATH; %s", systemOpener, systemOpenerHint), Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, openerWait)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, path, u)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", systemOpener, u, err, strings.TrimSpace(out.String()))
	}
	return nil
}
