package alerts

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/ipc/wire"
)

// A subscription window fires the same crossings as a limit, with a
// message that names the window.
func TestWindowCrossings(t *testing.T) {
	w, err := New(Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	steps := []struct {
		used     float64
		rejected bool
	}{{0.5, false}, {0.82, false}, {0.96, false}, {1.01, true}, {0.05, false}}
	var got []string
	var msgs []string
	for i, st := range steps {
		now := t0.Add(time.Duration(i) * time.Minute)
		u := st.used
		reset := now.Add(90 * time.Minute)
		win := wire.WindowStatus{Name: "5h", Label: "5-hour", Utilization: &u, ResetsAt: &reset}
		if st.rejected {
			win.Status = "rejected"
		}
		evs := w.Observe(wire.StatusResponse{Services: []wire.ServiceStatus{{Name: "claude", Windows: []wire.WindowStatus{win}}}}, now)
		got = append(got, kinds(evs)...)
		for _, e := range evs {
			msgs = append(msgs, e.Message)
		}
	}
	want := []string{"quota_low80", "quota_low95", "quota_exhausted", "window_reset"}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if !strings.Contains(msgs[0], "claude has used 82% of its 5-hour window, resets in 1h30m") || !strings.Contains(msgs[2], "used up its 5-hour window") {
		t.Fatalf("messages %q", msgs)
	}
}
