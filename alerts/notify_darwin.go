package alerts

import (
	"context"
	"fmt"
	"os/exec"
)

// OSANotifier shows notifications in the macOS notification centre with
// osascript's `display notification`. Title and body go in as arguments,
// never into the script's text, so no quoting can break out of it (they
// start with "quotabar:" and a service name, never with an option's "-").
type OSANotifier struct{}

func (OSANotifier) Notify(ctx context.Context, title, body string, urgent bool) error {
	args := []string{"-e", "on run argv", "-e", "display notification (item 2 of argv) with title (item 1 of argv)", "-e", "end run", title, body}
	if urgent {
		args[3] = `display notification (item 2 of argv) with title (item 1 of argv) sound name "Funk"`
	}
	if out, err := exec.CommandContext(ctx, "/usr/bin/osascript", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("osascript display notification: %w: %s", err, out)
	}
	return nil
}

// SystemNotifier is the platform's notifier: the notification centre.
func SystemNotifier() Notifier { return OSANotifier{} }
