package statusline

import (
	"fmt"
	"strings"

	"github.com/quotabar/quotabar/internal/quotaview"
)

// windowText is a service whose tightest quota is a subscription window:
// "claude 5-hour 62% used · resets 1h42m".
func windowText(s quotaview.Service, w quotaview.Window) string {
	var b strings.Builder
	b.WriteString(s.Name)
	switch s.State {
	case quotaview.Exhausted:
		b.WriteString(" exhausted")
	case quotaview.Low:
		b.WriteString(" low")
	}
	fmt.Fprintf(&b, " %s %d%% used", w.Label, w.UsedPercent())
	if w.Reserved {
		b.WriteString(", high priority only")
	}
	if w.ResetsIn > 0 {
		fmt.Fprintf(&b, " · resets %s", quotaview.Duration(w.ResetsIn))
	}
	return b.String()
}
