//go:build linux

package tray

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/quotabar/quotabar/app/icons"
	"github.com/quotabar/quotabar/ipc/wire"
)

const subscriptionTrayConfig = `show_title = true
[proxy]
enabled = false
[services.claude]
preset = "claude"
reserve_high = 0.10
`

// iconWatch follows the item's icon as a panel does, from the
// PropertiesChanged signals the app sends with each new IconPixmap. It does
// not read the property with Get: godbus's Get hands the reply encoder the
// property's own slice after unlocking, and the app's next SetIcon stores
// into that slice in place, which the race detector rightly reports (a
// panel reading the icon in a -race build would trip it too). The signal is
// encoded under the property lock, in the goroutine that sets it.
type iconWatch struct {
	ch   chan *dbus.Signal
	last []struct {
		W, H int32
		Pix  []byte
	}
}

func watchIcon(t *testing.T, conn *dbus.Conn, m dbusMenu) *iconWatch {
	t.Helper()
	if err := conn.AddMatchSignal(dbus.WithMatchObjectPath(m.item.Path()), dbus.WithMatchInterface("org.freedesktop.DBus.Properties"), dbus.WithMatchMember("PropertiesChanged")); err != nil {
		t.Fatal(err)
	}
	w := &iconWatch{ch: make(chan *dbus.Signal, 256)}
	conn.Signal(w.ch)
	t.Cleanup(func() { conn.RemoveSignal(w.ch) })
	return w
}

// has reports whether the icon last sent has pixels in the colour of state
// s (IconPixmap, ARGB); before any change was sent it is the icon the app
// started with, which is near no limit, and has reports false.
func (w *iconWatch) has(s icons.State) (bool, error) {
	for drained := false; !drained; {
		select {
		case sig := <-w.ch:
			if sig.Name != "org.freedesktop.DBus.Properties.PropertiesChanged" || len(sig.Body) < 2 {
				continue
			}
			changed, _ := sig.Body[1].(map[string]dbus.Variant)
			v, ok := changed["IconPixmap"]
			if !ok {
				continue
			}
			if err := dbus.Store([]any{v.Value()}, &w.last); err != nil {
				return false, fmt.Errorf("IconPixmap is %T: %w", v.Value(), err)
			}
		default:
			drained = true
		}
	}
	c := s.Colour()
	want := []byte{0xFF, c.R, c.G, c.B}
	for _, p := range w.last {
		for i := 0; i+4 <= len(p.Pix); i += 4 {
			if bytes.Equal(p.Pix[i:i+4], want) {
				return true, nil
			}
		}
	}
	return false, nil
}

// The menu shows a subscription's 5-hour and weekly rows as reports pass,
// marks the one in a warning state, and the icon turns to near-limit.
func TestTraySubscriptionWindows(t *testing.T) {
	bus := startPrivateBus(t)
	conn := busConnect(t, bus)
	w := startWatcher(t, conn)
	a := startTrayAppWith(t, bus, subscriptionTrayConfig)
	m := registeredMenu(t, conn, w)
	icon := watchIcon(t, conn, m)
	c := a.client()
	ctx := context.Background()

	reset5 := time.Now().Add(102*time.Minute + 30*time.Second).Truncate(time.Second)
	reset7 := time.Now().Add(71 * time.Hour).Truncate(time.Second)
	report := func(agent, status string, u5 float64) {
		t.Helper()
		if _, err := c.Report(ctx, wire.ReportRequest{Agent: agent, Service: "claude", Status: 200, Usage: wire.Cost{"tokens": 1000},
			Headers: map[string]string{
				"anthropic-ratelimit-unified-status":         status,
				"anthropic-ratelimit-unified-5h-utilization": strconv.FormatFloat(u5, 'f', 2, 64),
				"anthropic-ratelimit-unified-5h-reset":       strconv.FormatInt(reset5.Unix(), 10),
				"anthropic-ratelimit-unified-5h-status":      status,
				"anthropic-ratelimit-unified-7d-utilization": "0.31",
				"anthropic-ratelimit-unified-7d-reset":       strconv.FormatInt(reset7.Unix(), 10),
				"anthropic-ratelimit-unified-7d-status":      "allowed",
			}}); err != nil {
			t.Fatalf("report: %v", err)
		}
	}
	report("alpha", "allowed", 0.62)
	report("beta", "allowed", 0.62)
	weekRow := "week: 31% used, resets " + reset7.In(time.Local).Format("Mon 15:04")
	trayWait(t, "the 5-hour and weekly rows", func() error {
		if _, err := m.find("claude: 38% left"); err != nil {
			return err
		}
		svc, _ := m.find("claude")
		five, err := svc.child("5-hour: 62% used, resets in 1 h 4") // 1 h 42 m or 1 h 43 m, by the clock
		if err != nil {
			return err
		}
		if five.Enabled {
			return fmt.Errorf("the 5-hour row %q is clickable", five.Label)
		}
		if _, err := svc.child(weekRow); err != nil {
			return err
		}
		_, err = svc.child("Top of 5-hour: alpha 50%, beta 50%")
		return err
	})
	if ok, err := icon.has(icons.NearLimit); err != nil || ok {
		t.Fatalf("icon near-limit at 62%% used: %v, %v", ok, err)
	}

	// The provider warns: the row is marked and the icon follows the
	// tightest window.
	report("alpha", "allowed_warning", 0.93)
	trayWait(t, "the warning state", func() error {
		svc, err := m.find("claude: 7% left, high priority only")
		if err != nil {
			return err
		}
		row, err := svc.child(warnMark + "5-hour: 93% used, resets in 1 h 4")
		if err != nil {
			return err
		}
		if !strings.HasSuffix(row.Label, "· high priority only") {
			return fmt.Errorf("the reserved row %q does not say so", row.Label)
		}
		if week, err := svc.child(weekRow); err != nil || strings.HasPrefix(week.Label, warnMark) {
			return fmt.Errorf("the weekly row %q, %v: want it without a warning", week.Label, err)
		}
		if ok, err := icon.has(icons.NearLimit); err != nil || !ok {
			return fmt.Errorf("icon not near-limit (%v)", err)
		}
		return nil
	})
	if ok, err := icon.has(icons.Flowing); err != nil || ok {
		t.Errorf("the near-limit icon still has the flowing colour: %v, %v", ok, err)
	}
	m.quit(t)
	a.waitExit(t)
}
