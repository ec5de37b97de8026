package tray

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/app/icons"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time { t := t0.Add(d); return &t }

func openai(mut ...func(*wire.ServiceStatus)) wire.ServiceStatus {
	s := wire.ServiceStatus{
		Name: "openai", MaxConcurrent: 8, InFlight: 2,
		Limits: []wire.LimitStatus{{Unit: "requests", Quota: 500, WindowMS: 60000, Remaining: 412, ResetsAt: at(42 * time.Second), Source: "config"}},
	}
	for _, m := range mut {
		m(&s)
	}
	return s
}

func agent(name, prio string, mut ...func(*wire.AgentStatus)) wire.AgentStatus {
	a := wire.AgentStatus{Name: name, Priority: prio, Weight: 1, LastSeen: at(-time.Minute)}
	for _, m := range mut {
		m(&a)
	}
	return a
}

func labels(items []menuItem) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Label)
	}
	return out
}

func TestBuildMenu(t *testing.T) {
	type check struct {
		key     string
		label   string // "" skips
		checked bool
		hidden  bool
		act     action
	}
	tests := []struct {
		name    string
		in      menuInput
		icon    icons.State
		title   string
		tooltip string // a substring
		items   []check
		absent  []string
		ticking bool
	}{{
		name: "flowing",
		in:   menuInput{Status: wire.StatusResponse{Services: []wire.ServiceStatus{openai()}}, Now: t0, ShowTitle: true},
		icon: icons.Flowing, title: "82%", tooltip: "openai 82% left", ticking: true,
		items: []check{
			{key: "svc/openai", label: "openai: 82% left"},
			{key: "svc/openai/limit/0", label: "412 / 500 requests, resets in 42 s"},
			{key: "svc/openai/activity", label: "2 / 8 in flight, 0 queued"},
			{key: "svc/openai/cooldown", label: "Cooling down", hidden: true},
			{key: "svc/openai/pause", label: "Pause", act: action{Kind: actPauseService, Name: "openai", On: true}},
			{key: "agents/none", label: "No recent agents"},
			{key: "notify", label: "Quota notifications", act: action{Kind: actNotify, On: true}},
			{key: "autostart", label: "Start at login", act: action{Kind: actAutostart, On: true}},
			{key: "quit", label: "Quit", act: action{Kind: actQuit}},
		},
		absent: []string{"svc/openai/fallback", "svc/openai/open", "svc/openai/cluster"},
	}, {
		name: "a shared service offline says so",
		in: menuInput{Status: wire.StatusResponse{Services: []wire.ServiceStatus{openai(func(s *wire.ServiceStatus) {
			s.Cluster = &wire.ClusterStatus{State: "offline", Share: 1.0 / 3, Members: 3, Text: "cluster: offline, using 1/3"}
		})}}, Now: t0, ShowTitle: true},
		icon: icons.Flowing, title: "82%",
		items: []check{{key: "svc/openai/cluster", label: "cluster: offline, using 1/3"}},
	}, {
		name: "title off, autostart on",
		in:   menuInput{Status: wire.StatusResponse{Services: []wire.ServiceStatus{openai()}}, Now: t0, Autostart: true},
		icon: icons.Flowing, title: "", tooltip: "openai 82% left", ticking: true,
		items: []check{{key: "autostart", checked: true, act: action{Kind: actAutostart, On: false}}},
	}, {
		name: "notifications on",
		in:   menuInput{Status: wire.StatusResponse{Services: []wire.ServiceStatus{openai()}}, Now: t0, Notify: true},
		icon: icons.Flowing, tooltip: "openai 82% left", ticking: true,
		items: []check{{key: "notify", checked: true, act: action{Kind: actNotify, On: false}}},
	}, {
		name: "cooling down after a 429",
		in: menuInput{Status: wire.StatusResponse{Services: []wire.ServiceStatus{openai(func(s *wire.ServiceStatus) {
			s.CooldownUntil, s.Queued = at(17500*time.Millisecond), 3
		})}}, Now: t0, ShowTitle: true},
		icon: icons.Cooldown, title: "18 s", tooltip: "openai cooling down, 18 s left; 3 queued", ticking: true,
		items: []check{
			{key: "svc/openai", label: "openai: cooling down, 18 s, 3 queued"},
			{key: "svc/openai/cooldown", label: "Cooling down: 18 s left"},
			{key: "svc/openai/activity", label: "2 / 8 in flight, 3 queued"},
		},
	}, {
		name: "a cooldown that has passed is not shown",
		in: menuInput{Status: wire.StatusResponse{Services: []wire.ServiceStatus{openai(func(s *wire.ServiceStatus) {
			s.CooldownUntil = at(-time.Second)
		})}}, Now: t0, ShowTitle: true},
		icon: icons.Flowing, title: "82%",
		items: []check{{key: "svc/openai/cooldown", hidden: true}},
	}, {
		name: "queued",
		in: menuInput{Status: wire.StatusResponse{Services: []wire.ServiceStatus{openai(func(s *wire.ServiceStatus) {
			s.Queued = 4
		})}}, Now: t0, ShowTitle: true},
		icon: icons.Queued, title: "82%", tooltip: "4 queued",
		items: []check{{key: "svc/openai", label: "openai: 82% left, 4 queued"}},
	}, {
		name: "near the limit, full limit shows no reset",
		in: menuInput{Status: wire.StatusResponse{Services: []wire.ServiceStatus{openai(func(s *wire.ServiceStatus) {
			s.Limits = append(s.Limits,
				wire.LimitStatus{Unit: "tokens", Quota: 200000, WindowMS: 60000, Remaining: 15000, ResetsAt: at(90 * time.Second)},
				wire.LimitStatus{Unit: "requests", Quota: 10000, WindowMS: 86400000, Remaining: 10000, ResetsAt: at(time.Hour)})
		})}}, Now: t0, ShowTitle: true},
		icon: icons.NearLimit, title: "7%", ticking: true,
		items: []check{
			{key: "svc/openai/limit/0", label: "412 / 500 requests per 1 min, resets in 42 s"},
			{key: "svc/openai/limit/1", label: "15,000 / 200,000 tokens, resets in 2 min"},
			{key: "svc/openai/limit/2", label: "10,000 / 10,000 requests per 24 h"},
		},
	}, {
		name: "learned limit without quota, no reset known",
		in:   menuInput{Status: wire.StatusResponse{Services: []wire.ServiceStatus{{Name: "gh", Limits: []wire.LimitStatus{{Unit: "input_tokens", Remaining: 1234}}}}}, Now: t0, ShowTitle: true},
		icon: icons.Flowing, title: "",
		items: []check{
			{key: "svc/gh", label: "gh"},
			{key: "svc/gh/limit/0", label: "1,234 input tokens left"},
			{key: "svc/gh/activity", label: "0 in flight, 0 queued"},
		},
	}, {
		name: "every service paused",
		in: menuInput{Status: wire.StatusResponse{Services: []wire.ServiceStatus{
			openai(func(s *wire.ServiceStatus) { s.Paused, s.Queued = true, 2 }),
			{Name: "anthropic", Paused: true},
		}}, Now: t0, ShowTitle: true},
		icon: icons.Paused, title: "", tooltip: "quotabar: openai paused; anthropic paused",
		items: []check{
			{key: "svc/openai", label: "openai: paused"},
			{key: "svc/openai/pause", checked: true, act: action{Kind: actPauseService, Name: "openai", On: false}},
			{key: "svc/anthropic/limit/none", label: "No limits known yet"},
		},
	}, {
		name: "one paused service does not hide the other",
		in: menuInput{Status: wire.StatusResponse{Services: []wire.ServiceStatus{
			openai(func(s *wire.ServiceStatus) { s.Paused = true }),
			{Name: "anthropic", Limits: []wire.LimitStatus{{Unit: "requests", Quota: 50, Remaining: 25}}},
		}}, Now: t0, ShowTitle: true},
		icon: icons.Flowing, title: "50%",
	}, {
		name: "web fallback",
		in: menuInput{Status: wire.StatusResponse{Services: []wire.ServiceStatus{openai(func(s *wire.ServiceStatus) {
			s.Fallback = &wire.FallbackInfo{Browser: "chrome"}
		})}}, Now: t0, CanOpen: true},
		icon: icons.Flowing,
		items: []check{
			{key: "svc/openai/fallback", label: "Web fallback (chrome)", act: action{Kind: actFallback, Name: "openai", On: true}},
			{key: "svc/openai/open", label: "Open in browser", act: action{Kind: actOpenBrowser, Name: "openai"}},
		},
	}, {
		name: "web fallback switched on, no opener",
		in: menuInput{Status: wire.StatusResponse{Services: []wire.ServiceStatus{openai(func(s *wire.ServiceStatus) {
			s.Fallback = &wire.FallbackInfo{Browser: "webkit", Enabled: true}
		})}}, Now: t0},
		icon: icons.Flowing,
		items: []check{
			{key: "svc/openai/fallback", checked: true, act: action{Kind: actFallback, Name: "openai", On: false}},
		},
		absent: []string{"svc/openai/open"},
	}, {
		name: "agents: busy, recent and paused stay, idle ones drop off",
		in: menuInput{Status: wire.StatusResponse{Services: []wire.ServiceStatus{openai()}, Agents: []wire.AgentStatus{
			agent("research", "high", func(a *wire.AgentStatus) { a.InFlight, a.Queued, a.Counters.Granted = 1, 2, 30 }),
			agent("idle", "normal", func(a *wire.AgentStatus) { a.LastSeen = at(-agentIdle) }),
			agent("never", "normal", func(a *wire.AgentStatus) { a.LastSeen = nil }),
			agent("stopped", "low", func(a *wire.AgentStatus) { a.Paused, a.LastSeen = true, nil }),
			agent("quiet", "normal"),
		}}, Now: t0},
		icon: icons.Flowing,
		items: []check{
			{key: "agent/research", label: "research: 1 in flight, 2 queued"},
			{key: "agent/research/activity", label: "1 in flight, 2 queued, 30 granted, 0 refused"},
			{key: "agent/research/priority/high", label: "High priority", checked: true, act: action{Kind: actAgentPriority, Name: "research", Priority: limiter.High}},
			{key: "agent/research/priority/low", label: "Low priority", act: action{Kind: actAgentPriority, Name: "research", Priority: limiter.Low}},
			{key: "agent/research/pause", label: "Pause", act: action{Kind: actPauseAgent, Name: "research", On: true}},
			{key: "agent/stopped", label: "stopped: paused"},
			{key: "agent/stopped/pause", checked: true, act: action{Kind: actPauseAgent, Name: "stopped", On: false}},
			{key: "agent/quiet", label: "quiet"},
		},
		absent: []string{"agent/idle", "agent/never", "agents/none"},
	}, {
		name: "no services",
		in:   menuInput{Now: t0, ShowTitle: true},
		icon: icons.Flowing,
		items: []check{
			{key: "no-services", label: "No services configured"},
			{key: "agents", label: "Agents"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := buildMenu(tt.in)
			if m.Icon != tt.icon || m.Title != tt.title {
				t.Errorf("icon %v, title %q; want %v, %q", m.Icon, m.Title, tt.icon, tt.title)
			}
			if !strings.Contains(m.Tooltip, tt.tooltip) {
				t.Errorf("tooltip %q does not contain %q", m.Tooltip, tt.tooltip)
			}
			if tt.ticking && !m.Ticking {
				t.Errorf("model shows a countdown but is not ticking")
			}
			for _, c := range tt.items {
				it := findItem(m.Items, c.key)
				if it == nil {
					t.Errorf("no item %q; top level: %q", c.key, labels(m.Items))
					continue
				}
				if c.label != "" && it.Label != c.label {
					t.Errorf("%s: label %q, want %q", c.key, it.Label, c.label)
				}
				if it.Checked != c.checked || it.Hidden != c.hidden {
					t.Errorf("%s: checked %v hidden %v, want %v %v", c.key, it.Checked, it.Hidden, c.checked, c.hidden)
				}
				if c.act != (action{}) && it.Action != c.act {
					t.Errorf("%s: action %+v, want %+v", c.key, it.Action, c.act)
				}
			}
			for _, k := range tt.absent {
				if it := findItem(m.Items, k); it != nil {
					t.Errorf("item %q (%q) should not be shown", k, it.Label)
				}
			}
			if got := labels(m.Items[len(m.Items)-6:]); !slices.Equal(got, []string{"Open config file", "Copy socket path", "Quota notifications", "Start at login", "", "Quit"}) {
				t.Errorf("tail of the menu: %q", got)
			}
		})
	}
}

func TestBuildMenuKeysUnique(t *testing.T) {
	m := buildMenu(menuInput{Now: t0, CanOpen: true, Status: wire.StatusResponse{
		Services: []wire.ServiceStatus{openai(func(s *wire.ServiceStatus) { s.Fallback = &wire.FallbackInfo{} }), {Name: "b"}},
		Agents:   []wire.AgentStatus{agent("a", "low"), agent("b", "high")},
	}})
	seen := map[string]bool{}
	var walk func([]menuItem)
	walk = func(items []menuItem) {
		for _, it := range items {
			if seen[it.Key] {
				t.Errorf("key %q used twice", it.Key)
			}
			seen[it.Key] = true
			walk(it.Children)
		}
	}
	walk(m.Items)
}

func TestFmtDuration(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0 s"}, {-time.Second, "0 s"}, {time.Millisecond, "1 s"}, {42 * time.Second, "42 s"},
		{59*time.Second + time.Millisecond, "1 min"}, {60 * time.Second, "1 min"}, {61 * time.Second, "2 min"},
		{time.Hour, "1 h"}, {time.Hour + time.Second, "1 h 1 min"}, {2*time.Hour + 5*time.Minute, "2 h 5 min"},
		{2*time.Hour + 59*time.Minute + 30*time.Second, "3 h"}, {24 * time.Hour, "24 h"},
	} {
		if got := fmtDuration(tt.d); got != tt.want {
			t.Errorf("fmtDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestFmtCount(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 200000: "200,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := fmtCount(n); got != want {
			t.Errorf("fmtCount(%d) = %q, want %q", n, got, want)
		}
	}
}

// fakeTray applies changes the way systray can: items are appended to their
// menu, separators cannot be removed. It fails the test on anything systray
// could not do.
type fakeTray struct {
	root  []*fakeNode
	nodes map[string]*fakeNode
	title string
	calls int // changes applied other than title, tooltip and icon
}

type fakeNode struct {
	item   menuItem
	parent *fakeNode
	kids   []*fakeNode
}

func (f *fakeTray) apply(t *testing.T, changes []change) {
	t.Helper()
	if f.nodes == nil {
		f.nodes = map[string]*fakeNode{}
	}
	for _, c := range changes {
		switch c.Op {
		case changeTitle:
			f.title = c.Item.Label
			continue
		case changeTooltip, changeIcon:
			continue
		}
		f.calls++
		switch c.Op {
		case changeReset:
			f.root, f.nodes = nil, map[string]*fakeNode{}
		case changeAdd:
			if f.nodes[c.Key] != nil {
				t.Fatalf("add %q: already there", c.Key)
			}
			n := &fakeNode{item: c.Item}
			if c.Parent == "" {
				f.root = append(f.root, n)
			} else {
				p := f.nodes[c.Parent]
				if p == nil || p.item.Kind != kindSubmenu {
					t.Fatalf("add %q: no submenu %q", c.Key, c.Parent)
				}
				n.parent = p
				p.kids = append(p.kids, n)
			}
			f.nodes[c.Key] = n
		case changeRemove:
			n := f.nodes[c.Key]
			if n == nil {
				t.Fatalf("remove %q: not there", c.Key)
			}
			if n.item.Kind == kindSeparator {
				t.Fatalf("remove %q: systray cannot remove a separator", c.Key)
			}
			siblings := &f.root
			if n.parent != nil {
				siblings = &n.parent.kids
			}
			*siblings = slices.DeleteFunc(*siblings, func(x *fakeNode) bool { return x == n })
			var forget func(*fakeNode)
			forget = func(n *fakeNode) {
				delete(f.nodes, n.item.Key)
				for _, k := range n.kids {
					forget(k)
				}
			}
			forget(n)
		case changeUpdate:
			n := f.nodes[c.Key]
			if n == nil {
				t.Fatalf("update %q: not there", c.Key)
			}
			n.item = c.Item
		default:
			t.Fatalf("unknown change %v", c.Op)
		}
	}
}

// dump writes the tree as the person would see it, one item a line.
func dumpNodes(b *strings.Builder, nodes []*fakeNode, indent string) {
	for _, n := range nodes {
		fmt.Fprintf(b, "%s%s %d %q %v %v %v\n", indent, n.item.Key, n.item.Kind, n.item.Label, n.item.Checked, n.item.Disabled, n.item.Hidden)
		dumpNodes(b, n.kids, indent+"  ")
	}
}

func dumpItems(b *strings.Builder, items []menuItem, indent string) {
	for _, it := range items {
		fmt.Fprintf(b, "%s%s %d %q %v %v %v\n", indent, it.Key, it.Kind, it.Label, it.Checked, it.Disabled, it.Hidden)
		dumpItems(b, it.Children, indent+"  ")
	}
}

func TestDiffMenu(t *testing.T) {
	st := func(svcs []wire.ServiceStatus, agents ...wire.AgentStatus) menuInput {
		return menuInput{Status: wire.StatusResponse{Services: svcs, Agents: agents}, Now: t0, ShowTitle: true}
	}
	base := st([]wire.ServiceStatus{openai()})
	later := base
	later.Now = t0.Add(time.Second)
	cooling := st([]wire.ServiceStatus{openai(func(s *wire.ServiceStatus) { s.CooldownUntil = at(20 * time.Second) })})
	paused := st([]wire.ServiceStatus{openai(func(s *wire.ServiceStatus) { s.Paused = true })})
	learned := st([]wire.ServiceStatus{openai(func(s *wire.ServiceStatus) {
		s.Limits = append(s.Limits, wire.LimitStatus{Unit: "tokens", Quota: 1000, Remaining: 1000})
	})})
	agentsAC := st([]wire.ServiceStatus{openai()}, agent("a", "normal"), agent("c", "normal"))
	agentsABC := st([]wire.ServiceStatus{openai()}, agent("a", "normal"), agent("b", "high"), agent("c", "normal"))
	agentsABCLow := st([]wire.ServiceStatus{openai()}, agent("a", "normal"), agent("b", "low"), agent("c", "normal"))
	twoServices := st([]wire.ServiceStatus{openai(), {Name: "anthropic"}})

	tests := []struct {
		name     string
		old, new menuInput
		want     []string // the changes, as "op key"
	}{
		{"nothing changed", base, base, nil},
		{"a countdown ticks", base, later, []string{"update svc/openai/limit/0"}},
		{"a cooldown appears", base, cooling, []string{"title", "tooltip", "icon", "update svc/openai", "update svc/openai/cooldown"}},
		{"pause", base, paused, []string{"title", "tooltip", "icon", "update svc/openai", "update svc/openai/pause"}},
		{"first agent", base, agentsAC, []string{
			"remove agents/none",
			"add agent/a", "add agent/a/activity", "add agent/a/sep", "add agent/a/priority/high", "add agent/a/priority/normal",
			"add agent/a/priority/low", "add agent/a/sep2", "add agent/a/pause",
			"add agent/c", "add agent/c/activity", "add agent/c/sep", "add agent/c/priority/high", "add agent/c/priority/normal",
			"add agent/c/priority/low", "add agent/c/sep2", "add agent/c/pause",
		}},
		{"an agent between two: the one after it is re-added", agentsAC, agentsABC, []string{
			"remove agent/c",
			"add agent/b", "add agent/b/activity", "add agent/b/sep", "add agent/b/priority/high", "add agent/b/priority/normal",
			"add agent/b/priority/low", "add agent/b/sep2", "add agent/b/pause",
			"add agent/c", "add agent/c/activity", "add agent/c/sep", "add agent/c/priority/high", "add agent/c/priority/normal",
			"add agent/c/priority/low", "add agent/c/sep2", "add agent/c/pause",
		}},
		{"priority: two checkboxes", agentsABC, agentsABCLow, []string{"update agent/b/priority/high", "update agent/b/priority/low"}},
		{"agent drops off", agentsABC, agentsAC, []string{"remove agent/b"}},
		// A learned limit lands before the service's separator, and the
		// service's submenu before the top-level separator: only a rebuild
		// can put it there.
		{"a limit is learned", base, learned, []string{"reset", "add*"}},
		{"a service is added", base, twoServices, []string{"reset", "add*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oldM, newM := buildMenu(tt.old), buildMenu(tt.new)
			changes := diffMenu(oldM, newM)
			var got []string
			for _, c := range changes {
				s := map[changeOp]string{changeReset: "reset", changeRemove: "remove", changeAdd: "add", changeUpdate: "update",
					changeTitle: "title", changeTooltip: "tooltip", changeIcon: "icon"}[c.Op]
				if c.Key != "" {
					s += " " + c.Key
				}
				got = append(got, s)
			}
			if len(tt.want) == 2 && tt.want[1] == "add*" {
				if len(got) == 0 || got[0] != "reset" {
					t.Fatalf("changes %q, want a reset first", got)
				}
				for _, g := range got[1:] {
					if !strings.HasPrefix(g, "add ") {
						t.Fatalf("after a reset only adds, got %q", g)
					}
				}
			} else if !slices.Equal(got, tt.want) {
				t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestDiffMenuReachesModel applies the diff between every pair of a set of
// menus to a fake systray and checks it then shows exactly the new menu.
func TestDiffMenuReachesModel(t *testing.T) {
	svc := func(mut ...func(*wire.ServiceStatus)) []wire.ServiceStatus {
		return []wire.ServiceStatus{openai(mut...)}
	}
	inputs := map[string]menuInput{
		"empty":    {Now: t0},
		"base":     {Now: t0, Status: wire.StatusResponse{Services: svc()}},
		"cooling":  {Now: t0, Status: wire.StatusResponse{Services: svc(func(s *wire.ServiceStatus) { s.CooldownUntil = at(time.Minute) })}},
		"fallback": {Now: t0, CanOpen: true, Status: wire.StatusResponse{Services: svc(func(s *wire.ServiceStatus) { s.Fallback = &wire.FallbackInfo{Browser: "chrome"} })}},
		"learned": {Now: t0, Status: wire.StatusResponse{Services: svc(func(s *wire.ServiceStatus) {
			s.Limits = append(s.Limits, wire.LimitStatus{Unit: "tokens", Quota: 10, Remaining: 1})
		})}},
		"no limits": {Now: t0, Status: wire.StatusResponse{Services: svc(func(s *wire.ServiceStatus) { s.Limits = nil })}},
		"two": {Now: t0, Status: wire.StatusResponse{Services: append(svc(), wire.ServiceStatus{Name: "x", Paused: true}),
			Agents: []wire.AgentStatus{agent("m", "low")}}},
		"agents": {Now: t0, Status: wire.StatusResponse{Services: svc(), Agents: []wire.AgentStatus{
			agent("a", "high"), agent("m", "normal", func(a *wire.AgentStatus) { a.Queued = 3 }), agent("z", "low")}}},
		"agents paused": {Now: t0.Add(agentIdle), Status: wire.StatusResponse{Services: svc(), Agents: []wire.AgentStatus{
			agent("a", "high"), agent("z", "low", func(a *wire.AgentStatus) { a.Paused = true })}}},
	}
	for oldName, oldIn := range inputs {
		for newName, newIn := range inputs {
			t.Run(oldName+"→"+newName, func(t *testing.T) {
				oldM, newM := buildMenu(oldIn), buildMenu(newIn)
				var f fakeTray
				f.apply(t, addAll("", oldM.Items))
				f.title = oldM.Title
				setup := f.calls
				f.apply(t, diffMenu(oldM, newM))
				var got, want strings.Builder
				dumpNodes(&got, f.root, "")
				dumpItems(&want, newM.Items, "")
				if got.String() != want.String() {
					t.Fatalf("after the diff the tray shows\n%s\nwant\n%s", got.String(), want.String())
				}
				if f.title != newM.Title {
					t.Errorf("title %q, want %q", f.title, newM.Title)
				}
				if oldName == newName && f.calls != setup {
					t.Errorf("no change made %d calls", f.calls-setup)
				}
			})
		}
	}
}
