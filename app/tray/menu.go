package tray

// The menu model: a pure function from a status snapshot to what the menu
// bar shows, and the diff between two models that the renderer (tray.go)
// applies. Nothing here touches systray, so all of it is tested by table.

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/quotabar/quotabar/app/icons"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

// agentIdle is how long an agent stays in the menu after its last call.
const agentIdle = 15 * time.Minute

// nearLimit is the fraction of a quota left under which the icon warns.
const nearLimit = 0.1

type itemKind uint8

const (
	kindText      itemKind = iota // a greyed-out line of information
	kindAction                    // a plain clickable item
	kindCheck                     // a checkbox
	kindSubmenu                   // opens its Children
	kindSeparator                 // a line; systray gives no handle to remove one
)

type actionKind uint8

const (
	actNone actionKind = iota
	actPauseService
	actResetService
	actFallback
	actOpenBrowser
	actAgentPriority
	actPauseAgent
	actOpenConfig
	actCopySocket
	actAutostart
	actNotify
	actQuit
)

// action is what a click does. For checkboxes On is the state after the
// click: the model says what to do, so a click on a stale item still does
// what the person saw.
type action struct {
	Kind     actionKind
	Name     string           // service or agent
	Priority limiter.Priority // actAgentPriority
	On       bool
}

// menuItem is one entry of the menu. Key is unique in the whole menu and
// stable across snapshots, so the diff can tell an update from a new item.
type menuItem struct {
	Key      string
	Kind     itemKind
	Label    string
	Checked  bool
	Disabled bool
	// Hidden keeps an item that comes and goes (the cooldown line) in its
	// place, because systray can only append items to a menu.
	Hidden   bool
	Action   action
	Children []menuItem
}

// menuModel is everything the menu bar shows.
type menuModel struct {
	Title   string
	Tooltip string
	Icon    icons.State
	Items   []menuItem
	// Ticking says that a label counts down, so the model must be rebuilt
	// every second even when no status change is announced.
	Ticking bool
}

// menuInput is what buildMenu needs besides the status.
type menuInput struct {
	Status    wire.StatusResponse
	Now       time.Time
	ShowTitle bool
	Autostart bool // the login item exists
	Notify    bool // desktop notifications of quota crossings are on
	// CanOpen says the daemon can open a service's web fallback, so "Open
	// in browser" is offered.
	CanOpen bool
}

// buildMenu turns a status snapshot into the menu.
func buildMenu(in menuInput) menuModel {
	var m menuModel
	for _, s := range in.Status.Services {
		m.Items = append(m.Items, serviceMenu(s, in, &m))
	}
	if len(in.Status.Services) == 0 {
		m.Items = append(m.Items, menuItem{Key: "no-services", Kind: kindText, Label: "No services configured", Disabled: true})
	}
	m.Items = append(m.Items, agentsMenu(in, &m),
		menuItem{Key: "sep-1", Kind: kindSeparator},
		menuItem{Key: "open-config", Kind: kindAction, Label: "Open config file", Action: action{Kind: actOpenConfig}},
		menuItem{Key: "copy-socket", Kind: kindAction, Label: "Copy socket path", Action: action{Kind: actCopySocket}},
		menuItem{Key: "notify", Kind: kindCheck, Label: "Quota notifications", Checked: in.Notify, Action: action{Kind: actNotify, On: !in.Notify}},
		menuItem{Key: "autostart", Kind: kindCheck, Label: "Start at login", Checked: in.Autostart, Action: action{Kind: actAutostart, On: !in.Autostart}},
		menuItem{Key: "sep-2", Kind: kindSeparator},
		menuItem{Key: "quit", Kind: kindAction, Label: "Quit", Action: action{Kind: actQuit}},
	)
	m.Icon, m.Title, m.Tooltip = glance(in)
	if !in.ShowTitle {
		m.Title = ""
	}
	return m
}

// left is the remaining fraction of the service's tightest limit, or -1 when
// it has no limit with a known quota.
func left(s wire.ServiceStatus) float64 {
	f := -1.0
	for _, l := range s.Limits {
		if l.Quota <= 0 {
			continue
		}
		r := math.Max(0, float64(l.Remaining)/float64(l.Quota))
		if f < 0 || r < f {
			f = r
		}
	}
	return f
}

// cooling returns how long the service still cools down, 0 when it does not.
func cooling(s wire.ServiceStatus, now time.Time) time.Duration {
	if s.CooldownUntil == nil || !s.CooldownUntil.After(now) {
		return 0
	}
	return s.CooldownUntil.Sub(now)
}

// glance picks the icon, the title and the tooltip: the worst state of any
// service that is not paused wins, and the title is the nearest end of a
// cooldown, else the tightest quota's percent left.
func glance(in menuInput) (icons.State, string, string) {
	var (
		cool          time.Duration
		tight         = -1.0
		queued        int
		paused, total int
		notes         []string
		warned        bool // a subscription window warns
	)
	for _, s := range in.Status.Services {
		total++
		if s.Paused {
			paused++
			notes = append(notes, s.Name+" paused")
			continue
		}
		queued += s.Queued
		if c := cooling(s, in.Now); c > 0 {
			if cool == 0 || c < cool {
				cool = c
			}
			notes = append(notes, fmt.Sprintf("%s cooling down, %s left", s.Name, fmtDuration(c)))
			continue
		}
		if f := tightest(s); f >= 0 {
			if tight < 0 || f < tight {
				tight = f
			}
			notes = append(notes, fmt.Sprintf("%s %s left", s.Name, percent(f)))
		}
		warned = warned || windowWarning(s)
	}
	if queued > 0 {
		notes = append(notes, fmt.Sprintf("%d queued", queued))
	}
	tooltip := "quotabar"
	if len(notes) > 0 {
		tooltip += ": " + strings.Join(notes, "; ")
	}
	var state icons.State
	switch {
	case cool > 0:
		state = icons.Cooldown
	case queued > 0:
		state = icons.Queued
	case (tight >= 0 && tight < nearLimit) || warned:
		state = icons.NearLimit
	case total > 0 && paused == total:
		state = icons.Paused
	default:
		state = icons.Flowing
	}
	title := ""
	switch {
	case cool > 0:
		title = fmtDuration(cool)
	case tight >= 0:
		title = percent(tight)
	}
	return state, title, tooltip
}

func percent(f float64) string { return strconv.Itoa(int(math.Floor(f*100))) + "%" }

func serviceMenu(s wire.ServiceStatus, in menuInput, m *menuModel) menuItem {
	key := "svc/" + s.Name
	cool := cooling(s, in.Now)
	label := s.Name
	switch {
	case s.Paused:
		label += ": paused"
	case cool > 0:
		label += ": cooling down, " + fmtDuration(cool)
	case tightest(s) >= 0:
		label += ": " + percent(tightest(s)) + " left"
		if reserved(s) {
			label += ", high priority only"
		}
	}
	if s.Queued > 0 && !s.Paused {
		label += fmt.Sprintf(", %d queued", s.Queued)
	}
	kids, ticking := windowItems(s, key, in.Now)
	m.Ticking = m.Ticking || ticking
	units := map[string]int{}
	for _, l := range s.Limits {
		units[l.Unit]++
	}
	for i, l := range s.Limits {
		text, ticking := limitLine(l, units[l.Unit] > 1, in.Now)
		m.Ticking = m.Ticking || ticking
		kids = append(kids, menuItem{Key: fmt.Sprintf("%s/limit/%d", key, i), Kind: kindText, Label: text, Disabled: true})
	}
	if len(s.Limits) == 0 && len(s.Windows) == 0 {
		kids = append(kids, menuItem{Key: key + "/limit/none", Kind: kindText, Label: "No limits known yet", Disabled: true})
	}
	inFlight := fmt.Sprintf("%d in flight", s.InFlight)
	if s.MaxConcurrent > 0 {
		inFlight = fmt.Sprintf("%d / %d in flight", s.InFlight, s.MaxConcurrent)
	}
	// The cooldown line is always there, hidden when not cooling down, so
	// that it appearing does not move the items after it.
	coolLine := "Cooling down"
	if cool > 0 {
		coolLine += ": " + fmtDuration(cool) + " left"
		m.Ticking = true
	}
	kids = append(kids,
		menuItem{Key: key + "/activity", Kind: kindText, Label: fmt.Sprintf("%s, %d queued", inFlight, s.Queued), Disabled: true},
		menuItem{Key: key + "/cooldown", Kind: kindText, Label: coolLine, Disabled: true, Hidden: cool == 0},
	)
	if c := s.Cluster; c != nil {
		// "cluster: offline, using 1/3": a shared service's standing.
		kids = append(kids, menuItem{Key: key + "/cluster", Kind: kindText, Label: c.Text, Disabled: true})
	}
	kids = append(kids,
		menuItem{Key: key + "/sep", Kind: kindSeparator},
		menuItem{Key: key + "/pause", Kind: kindCheck, Label: "Pause", Checked: s.Paused, Action: action{Kind: actPauseService, Name: s.Name, On: !s.Paused}},
		// The way out of an answer that froze the service: nothing is
		// sent while it holds, so no honest answer could correct it.
		menuItem{Key: key + "/reset", Kind: kindAction, Label: "Clear cooldown and learned limits", Action: action{Kind: actResetService, Name: s.Name}},
	)
	if fb := s.Fallback; fb != nil {
		kids = append(kids, menuItem{Key: key + "/fallback", Kind: kindCheck, Label: "Web fallback (" + fb.Browser + ")", Checked: fb.Enabled,
			Action: action{Kind: actFallback, Name: s.Name, On: !fb.Enabled}})
		if in.CanOpen {
			kids = append(kids, menuItem{Key: key + "/open", Kind: kindAction, Label: "Open in browser", Disabled: !fb.Enabled,
				Action: action{Kind: actOpenBrowser, Name: s.Name}})
		}
	}
	return menuItem{Key: key, Kind: kindSubmenu, Label: label, Children: kids}
}

// limitLine is "412 / 500 requests, resets in 42 s"; withWindow adds the
// window when a service has two limits of the same unit. ticking reports a
// countdown in the text.
func limitLine(l wire.LimitStatus, withWindow bool, now time.Time) (string, bool) {
	unit := strings.ReplaceAll(l.Unit, "_", " ")
	var b strings.Builder
	if l.Quota > 0 {
		fmt.Fprintf(&b, "%s / %s %s", fmtCount(l.Remaining), fmtCount(l.Quota), unit)
	} else {
		fmt.Fprintf(&b, "%s %s left", fmtCount(l.Remaining), unit)
	}
	if withWindow && l.WindowMS > 0 {
		b.WriteString(" per " + fmtDuration(time.Duration(l.WindowMS)*time.Millisecond))
	}
	if l.ResetsAt != nil && l.ResetsAt.After(now) && (l.Quota <= 0 || l.Remaining < l.Quota) {
		b.WriteString(", resets in " + fmtDuration(l.ResetsAt.Sub(now)))
		return b.String(), true
	}
	return b.String(), false
}

func agentsMenu(in menuInput, m *menuModel) menuItem {
	var kids []menuItem
	for _, a := range in.Status.Agents {
		busy := a.InFlight > 0 || a.Queued > 0
		recent := a.LastSeen != nil && in.Now.Sub(*a.LastSeen) < agentIdle
		if !busy && !recent && !a.Paused {
			continue
		}
		key := "agent/" + a.Name
		label := a.Name
		switch {
		case a.Paused:
			label += ": paused"
		case busy:
			label += fmt.Sprintf(": %d in flight, %d queued", a.InFlight, a.Queued)
		}
		sub := []menuItem{
			{Key: key + "/activity", Kind: kindText, Disabled: true,
				Label: fmt.Sprintf("%d in flight, %d queued, %d granted, %d refused", a.InFlight, a.Queued, a.Counters.Granted, a.Counters.Refused)},
			{Key: key + "/sep", Kind: kindSeparator},
		}
		for _, p := range []limiter.Priority{limiter.High, limiter.Normal, limiter.Low} {
			name := p.String()
			sub = append(sub, menuItem{Key: key + "/priority/" + name, Kind: kindCheck, Label: strings.ToUpper(name[:1]) + name[1:] + " priority",
				Checked: a.Priority == name, Action: action{Kind: actAgentPriority, Name: a.Name, Priority: p}})
		}
		sub = append(sub,
			menuItem{Key: key + "/sep2", Kind: kindSeparator},
			menuItem{Key: key + "/pause", Kind: kindCheck, Label: "Pause", Checked: a.Paused, Action: action{Kind: actPauseAgent, Name: a.Name, On: !a.Paused}})
		kids = append(kids, menuItem{Key: key, Kind: kindSubmenu, Label: label, Children: sub})
	}
	if len(kids) == 0 {
		kids = []menuItem{{Key: "agents/none", Kind: kindText, Label: "No recent agents", Disabled: true}}
	}
	return menuItem{Key: "agents", Kind: kindSubmenu, Label: "Agents", Children: kids}
}

// fmtDuration rounds up to what a glance needs: "42 s", "5 min", "2 h 5 min".
// Rounding up never shows "0 s" for something still pending.
func fmtDuration(d time.Duration) string {
	s := int64(math.Ceil(d.Seconds()))
	switch {
	case s < 60:
		return fmt.Sprintf("%d s", max(s, 0))
	case s < 3600:
		return fmt.Sprintf("%d min", (s+59)/60)
	}
	h, min := s/3600, (s%3600+59)/60
	if min == 60 {
		h, min = h+1, 0
	}
	if min == 0 {
		return fmt.Sprintf("%d h", h)
	}
	return fmt.Sprintf("%d h %d min", h, min)
}

// fmtCount writes n with thousands separators: 200,000.
func fmtCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// findItem returns the item with key anywhere in items, or nil.
func findItem(items []menuItem, key string) *menuItem {
	for i := range items {
		if items[i].Key == key {
			return &items[i]
		}
		if it := findItem(items[i].Children, key); it != nil {
			return it
		}
	}
	return nil
}

// change is one step of turning the rendered menu into a new model.
type change struct {
	Op     changeOp
	Key    string   // the item changed, removed or added
	Parent string   // changeAdd: the submenu's key, "" for the top level
	Item   menuItem // changeAdd, changeUpdate: the item's new state (Children unused)
}

type changeOp uint8

const (
	changeReset   changeOp = iota // remove every item, then add all (the changeAdds that follow)
	changeRemove                  // remove Key and everything under it
	changeAdd                     // append Item to Parent
	changeUpdate                  // set Key's label, check, enabled and visible state to Item's
	changeTitle                   // Item.Label is the new title
	changeTooltip                 // Item.Label is the new tooltip
	changeIcon                    // the model's icon changed
)

// diffMenu lists the changes that turn the menu showing old into one showing
// new, touching only what differs. systray appends new items at the end of
// their menu and cannot remove a separator, so an item that appears in the
// middle of a menu means removing and re-adding the items after it, and if
// one of those is a separator, rebuilding its whole submenu (or, at the top
// level, the whole menu).
func diffMenu(old, new menuModel) []change {
	var out []change
	if old.Title != new.Title {
		out = append(out, change{Op: changeTitle, Item: menuItem{Label: new.Title}})
	}
	if old.Tooltip != new.Tooltip {
		out = append(out, change{Op: changeTooltip, Item: menuItem{Label: new.Tooltip}})
	}
	if old.Icon != new.Icon {
		out = append(out, change{Op: changeIcon})
	}
	items, ok := diffItems("", old.Items, new.Items)
	if !ok {
		out = append(out, change{Op: changeReset})
		return append(out, addAll("", new.Items)...)
	}
	return append(out, items...)
}

// diffItems diffs one menu's items; ok is false when a separator would have
// to go, so the caller must rebuild the menu itself.
func diffItems(parent string, old, new []menuItem) (_ []change, ok bool) {
	want := make(map[string]itemKind, len(new))
	for _, it := range new {
		want[it.Key] = it.Kind
	}
	var out, subs []change
	var kept []menuItem
	for _, it := range old {
		if k, found := want[it.Key]; found && k == it.Kind {
			kept = append(kept, it)
			continue
		}
		if it.Kind == kindSeparator {
			return nil, false
		}
		out = append(out, change{Op: changeRemove, Key: it.Key})
	}
	i := 0
	for ; i < len(kept) && i < len(new) && kept[i].Key == new[i].Key; i++ {
		o, n := kept[i], new[i]
		if o.Kind == kindSubmenu {
			sub, ok := diffItems(n.Key, o.Children, n.Children)
			if !ok {
				break // rebuild this submenu and everything after it
			}
			subs = append(subs, sub...)
		}
		if o.Label != n.Label || o.Checked != n.Checked || o.Disabled != n.Disabled || o.Hidden != n.Hidden {
			out = append(out, change{Op: changeUpdate, Key: n.Key, Item: leaf(n)})
		}
	}
	for _, it := range kept[i:] {
		if it.Kind == kindSeparator {
			return nil, false
		}
		out = append(out, change{Op: changeRemove, Key: it.Key})
	}
	out = append(out, subs...)
	return append(out, addAll(parent, new[i:])...), true
}

// addAll adds items and everything under them, parents first.
func addAll(parent string, items []menuItem) []change {
	var out []change
	for _, it := range items {
		out = append(out, change{Op: changeAdd, Key: it.Key, Parent: parent, Item: leaf(it)})
		out = append(out, addAll(it.Key, it.Children)...)
	}
	return out
}

// leaf is it without its children, as a change carries it.
func leaf(it menuItem) menuItem {
	it.Children = nil
	return it
}
