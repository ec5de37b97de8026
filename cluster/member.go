package cluster

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quotabar/quotabar/limiter"
	"github.com/redis/go-redis/v9"
)

// Limiter is what a Member needs of the daemon's limiter: *limiter.Limiter
// has it (limiter/share.go).
type Limiter interface {
	SetShare(service string, share float64) error
	ApplyCooldown(service string, until time.Time) error
	LearnLimits(service string, ps []limiter.Policy) error
	Demand(service string) (limiter.Demand, error)
	Subscribe() (<-chan struct{}, func())
	Now() time.Time
}

// State is how a daemon stands with the cluster.
type State string

// States.
const (
	// Joining: no answer from Redis yet, and no share known: the shared
	// service grants nothing until the first one.
	Joining State = "joining"
	// Online: the last refresh succeeded.
	Online State = "online"
	// Offline: Redis did not answer; the last share is kept.
	Offline State = "offline"
)

// ServiceStatus is one shared service's standing, for /v1/status and the
// menu. It never holds the Redis URL or password.
type ServiceStatus struct {
	State   State
	Share   float64 // fraction of the capacity this daemon may use now
	Members int     // live daemons sharing the service, at the last refresh
	// Recovering says Redis came back after a gap or without its data and
	// every share is frozen until all daemons have re-registered.
	Recovering bool
	// Error is the last Redis error, for a person; empty when online.
	Error string
	// Stopped says Offline = "stop" took the share away: the lease has
	// passed without an answer from Redis.
	Stopped bool
	// Text is the one-line summary: "cluster: online, using 1/3 of 3
	// members", "cluster: offline, using 1/3".
	Text string
}

// Stats counts a member's work, for the benchmark.
type Stats struct {
	Refreshes, Errors, Published, Received int64
}

// Member is one daemon's membership in a cluster. Create it with New, run it
// with Run; its methods are safe for concurrent use.
type Member struct {
	cfg      Config
	tls      bool // rediss://
	lim      Limiter
	rdb      *redis.Client
	log      *slog.Logger
	id       string
	label    string
	services []string
	keys     map[string]keys

	mu    sync.Mutex
	epoch string
	svc   map[string]*svcState

	statePath string    // WithStateFile; "" keeps nothing
	savedAt   time.Time // guarded by mu
	savedJSON []byte    // guarded by mu

	refreshes, errs, published, received atomic.Int64
}

type svcState struct {
	st ServiceStatus
	// coolKnown is the latest cooldown end this member knows of (its own
	// or one it applied): a later local one is news to publish.
	coolKnown time.Time
	// coolLocal is the end of the latest cooldown this daemon itself saw,
	// stated in every refresh so that a daemon that missed the message
	// polls it.
	coolLocal time.Time
	// lastTop and lastWeight are the demand's at its last backlog.
	lastTop    limiter.Priority
	lastWeight float64
	sawBacklog bool // since the last refresh
	// saved is the share of the state file (0: none), used while Redis
	// has not answered since the start.
	saved float64
	// sentOK is when the last refresh that was answered was sent: its
	// lease runs from no earlier than this in Redis's time.
	sentOK  time.Time
	stopped bool // Offline = stop has taken the share away
}

// New checks cfg, sets every shared service's share to nothing until Redis
// answers (or, with WithStateFile, until Redis fails to answer: then the
// last known share), and returns the member; Run connects. It reads the
// state file, if any, and does no other I/O.
func New(cfg Config, lim Limiter, shared []string, log *slog.Logger, options ...Option) (*Member, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	opts, err := cfg.options(true)
	if err != nil {
		return nil, err
	}
	// One try per refresh: the next refresh is the retry, and a Redis
	// that is slow must not hold a refresh past its interval.
	opts.MaxRetries = -1
	// And one dial per try: go-redis would otherwise dial five times with
	// backoff, past the call's timeout, and a TLS failure (the server's
	// certificate not trusted) would read as "did not answer in time".
	opts.DialerRetries = 1
	opts.DialTimeout = cfg.timeout()
	opts.ReadTimeout = cfg.timeout()
	opts.WriteTimeout = cfg.timeout()
	opts.PoolSize = 4
	opts.ContextTimeoutEnabled = true
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("cluster member id: %w", err)
	}
	host, _ := os.Hostname()
	m := &Member{
		cfg: cfg, tls: opts.TLSConfig != nil, lim: lim, log: log, id: hex.EncodeToString(b[:]),
		label: fmt.Sprintf("%.40s/%d", host, os.Getpid()),
		keys:  map[string]keys{}, svc: map[string]*svcState{},
	}
	for _, s := range shared {
		k, err := serviceKeys(cfg.Name, s)
		if err != nil {
			return nil, err
		}
		if _, dup := m.keys[s]; dup {
			continue
		}
		m.keys[s] = k
		m.services = append(m.services, s)
		m.svc[s] = &svcState{st: ServiceStatus{State: Joining}}
	}
	slices.Sort(m.services)
	for _, o := range options {
		o(m)
	}
	m.loadState()
	for _, s := range m.services {
		if err := lim.SetShare(s, 0); err != nil {
			return nil, fmt.Errorf("shared service %q: %w", s, err)
		}
		m.svc[s].st.Text = statusText(m.svc[s].st)
	}
	// go-redis has one logger per process; the daemon has one member.
	redis.SetLogger(redisLog{log})
	m.rdb = redis.NewClient(opts)
	return m, nil
}

// ID is the member's random id in Redis.
func (m *Member) ID() string { return m.id }

// Services lists the shared services, sorted.
func (m *Member) Services() []string { return slices.Clone(m.services) }

// Stats returns the member's counters.
func (m *Member) Stats() Stats {
	return Stats{Refreshes: m.refreshes.Load(), Errors: m.errs.Load(), Published: m.published.Load(), Received: m.received.Load()}
}

// Status returns the standing of a shared service; ok is false for a
// service that is not shared.
func (m *Member) Status(service string) (ServiceStatus, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.svc[service]
	if s == nil {
		return ServiceStatus{}, false
	}
	return s.st, true
}

// Run refreshes every shared service once per interval, publishes and
// applies cooldowns, and returns when ctx ends, closing the connection.
// The limiter's shares stay as they last were (a daemon shutting down
// grants nothing more anyway).
func (m *Member) Run(ctx context.Context) error {
	defer m.rdb.Close()
	if len(m.services) == 0 {
		<-ctx.Done()
		return nil
	}
	var wg sync.WaitGroup
	wg.Go(func() { m.subscribe(ctx) })
	wg.Go(func() { m.watch(ctx) })
	t := time.NewTicker(m.cfg.Refresh)
	defer t.Stop()
	for {
		m.refreshAll(ctx)
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
		}
	}
}

func (m *Member) refreshAll(ctx context.Context) {
	for _, s := range m.services {
		if ctx.Err() != nil {
			return
		}
		m.refresh(ctx, s)
	}
}

// refresh states the demand of one service and applies the answer.
func (m *Member) refresh(ctx context.Context, service string) {
	d, err := m.lim.Demand(service)
	if err != nil {
		m.log.Warn("cluster: reading demand", "service", service, "err", err)
		return
	}
	m.mu.Lock()
	st := m.svc[service]
	epoch := m.epoch
	var coolMS int64
	if left := st.coolLocal.Sub(m.lim.Now()); left > 0 {
		coolMS = max(1, left.Milliseconds())
	}
	m.mu.Unlock()
	// Hungry: requests waited at some moment since the last refresh (the
	// watch notes every backlog). Agents between calls leave the queue
	// empty for a moment; judged by that moment alone a busy daemon would
	// look idle at every other refresh and the shares would swing (and a
	// swing costs the drain of a window).
	backlog, top, weight := 0, d.Top, d.Weight
	m.mu.Lock()
	switch {
	case d.Backlog:
		backlog = 1
		st.lastTop, st.lastWeight = d.Top, d.Weight
	case st.sawBacklog:
		backlog = 1
		top, weight = cmp.Or(st.lastTop, limiter.Normal), cmp.Or(st.lastWeight, 1)
	}
	st.sawBacklog = false
	m.mu.Unlock()
	var learned []string
	for _, p := range d.Learned {
		learned = append(learned, fmt.Sprintf("%s %d %d", p.Unit, p.Window.Milliseconds(), p.Quota))
	}
	span := max(d.Span, time.Millisecond)
	k := m.keys[service]
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, m.cfg.timeout())
	res, err := refreshScript.Run(rctx, m.rdb, []string{k.members, k.meta, k.cooldown, k.limits},
		m.id, epoch, backlog, int(top), fmtFloat(weight), fmtFloat(d.Used), fmtFloat(d.Share),
		span.Milliseconds(), m.cfg.Lease.Milliseconds(), coolMS, strings.Join(learned, ";"), m.label,
	).Slice()
	cancel()
	m.refreshes.Add(1)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		m.errs.Add(1)
		m.offline(service, d.Share, err)
		return
	}
	r, err := parseReply(res)
	if err != nil {
		m.errs.Add(1)
		m.offline(service, d.Share, err)
		return
	}
	if err := m.lim.SetShare(service, r.share); err != nil {
		m.log.Warn("cluster: setting share", "service", service, "err", err)
	}
	now := m.lim.Now()
	var coolUntil time.Time
	if r.coolMS > 0 {
		coolUntil = now.Add(time.Duration(r.coolMS) * time.Millisecond)
	}
	m.mu.Lock()
	newEpoch := m.epoch != r.epoch
	m.epoch = r.epoch
	st.saved = 0
	st.sentOK, st.stopped = sent, false
	was := st.st.State
	st.st = ServiceStatus{State: Online, Share: r.share, Members: r.members, Recovering: r.recovering}
	st.st.Text = statusText(st.st)
	apply := coolUntil.After(st.coolKnown.Add(5 * time.Millisecond))
	if apply {
		st.coolKnown = coolUntil
	}
	m.mu.Unlock()
	if was != Online {
		m.log.Info("cluster: online", "service", service, "share", r.share, "members", r.members, "recovering", r.recovering)
	}
	if apply {
		_ = m.lim.ApplyCooldown(service, coolUntil)
	}
	m.saveState(newEpoch)
	if len(r.limits) > 0 {
		if err := m.lim.LearnLimits(service, r.limits); err != nil {
			m.log.Warn("cluster: limits learned by another daemon", "service", service, "err", err)
		}
	}
}

// offline keeps the share the limiter applies: no one can be given more
// while Redis does not answer, so it stays safe.
func (m *Member) offline(service string, share float64, err error) {
	m.mu.Lock()
	st := m.svc[service]
	was, wasErr := st.st.State, st.st.Error
	if st.st.State == Joining && st.saved > 0 && m.cfg.Offline != OfflineStop {
		// Never answered since the start, but a share is known from the
		// last run: as safe as any last share while Redis is away.
		share = st.saved
		st.st.State, st.st.Members = Offline, 0
		m.lim.SetShare(service, share)
	}
	if st.st.State != Joining {
		st.st.State = Offline
	}
	if m.cfg.Offline == OfflineStop && !st.sentOK.IsZero() && time.Since(st.sentOK) >= m.cfg.Lease {
		// The others may count this daemon gone after its lease and a
		// window, and reuse its share: stop before they can.
		if !st.stopped {
			st.stopped = true
			m.lim.SetShare(service, 0)
		}
		share = 0
	}
	st.st.Stopped = st.stopped
	st.st.Share = share
	st.st.Recovering = false
	st.st.Error = redisError(err)
	if m.tls && st.st.State == Joining && st.st.Error == errTimeout {
		// A plain Redis port takes the TLS hello for the start of a
		// command and waits for the rest: the handshake times out.
		st.st.Error += " (with rediss://: is the port a TLS port?)"
	}
	st.st.Text = statusText(st.st)
	now, msg := st.st.State, st.st.Error
	m.mu.Unlock()
	switch {
	case was == Online:
		m.log.Warn("cluster: offline, keeping the last share", "service", service, "share", share, "err", msg)
	case now == Joining && msg != wasErr:
		m.log.Warn("cluster: cannot join yet; the shared service grants nothing until redis answers", "service", service, "err", msg)
	}
}

const errTimeout = "redis did not answer in time"

// redisError is err's text without anything of the URL's credentials
// (go-redis errors name the address at most, but be sure).
func redisError(err error) string {
	s := err.Error()
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(s, "i/o timeout") {
		return errTimeout
	}
	if hint := tlsHint(err); hint != "" {
		s = hint + ": " + s
	}
	if len(s) > 400 {
		s = s[:400]
	}
	return s
}

// tlsHint says in a person's words what a TLS failure means and what to
// do, "" for any other error. The daemon does not join a server it cannot
// verify: the password would go to whoever answers.
func tlsHint(err error) string {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var header tls.RecordHeaderError
	// The server's alert: crypto/tls gives it over TCP as a *net.OpError
	// "remote error" around an unexported type, so only its text tells.
	var remote *net.OpError
	alert := ""
	if errors.As(err, &remote) && remote.Op == "remote error" && remote.Err != nil {
		alert = remote.Err.Error()
	}
	switch {
	case errors.As(err, &unknown):
		return "redis TLS: the server's certificate is not signed by a trusted CA, so the daemon does not connect (set [cluster] ca_file to the PEM file of the CA that signed it)"
	case errors.As(err, &host):
		return "redis TLS: the server's certificate is not for the host in the redis URL (use a name or IP the certificate lists)"
	case errors.As(err, &invalid):
		return "redis TLS: the server's certificate is not valid (expired, not yet valid or not for a server)"
	case alert == "tls: certificate required" || alert == "tls: bad certificate" || alert == "tls: unknown certificate authority":
		return "redis TLS: the server wants a client certificate it trusts (set [cluster] cert_file and key_file)"
	case errors.As(err, &header):
		return "redis TLS: the server did not answer in TLS (is the port a TLS port? rediss:// needs one)"
	}
	return ""
}

func statusText(st ServiceStatus) string {
	switch st.State {
	case Joining:
		return "cluster: joining, nothing granted until redis answers"
	case Offline:
		if st.Stopped {
			return `cluster: offline, granting nothing (offline = "stop")`
		}
		if st.Members == 0 {
			return "cluster: offline, using " + ShareString(st.Share) + " (last known)"
		}
		return "cluster: offline, using " + ShareString(st.Share)
	}
	s := fmt.Sprintf("cluster: online, using %s of %d member", ShareString(st.Share), st.Members)
	if st.Members != 1 {
		s += "s"
	}
	if st.Recovering {
		s += " (recovering: shares frozen)"
	}
	return s
}

// ShareString writes a share as a small fraction when it is close to one
// ("1/3", "2/5", "1/1"), else as a percentage.
func ShareString(f float64) string {
	if f <= 0 {
		return "0"
	}
	for n := 1; n <= 8; n++ {
		k := math.Round(f * float64(n))
		if k >= 1 && math.Abs(f*float64(n)-k) < 0.02 {
			return fmt.Sprintf("%d/%d", int(k), n)
		}
	}
	return fmt.Sprintf("%.0f%%", f*100)
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'f', 6, 64) }

type reply struct {
	share      float64
	epoch      string
	members    int
	coolMS     int64
	limits     []limiter.Policy
	recovering bool
}

// parseReply reads the script's answer; Redis is trusted no more than it
// must be: a share outside [0, 1] or a malformed answer is an error.
func parseReply(v []any) (reply, error) {
	var r reply
	if len(v) != 6 {
		return r, fmt.Errorf("refresh script answered %d values, want 6", len(v))
	}
	s, _ := v[0].(string)
	share, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(share) || share < 0 || share > 1 {
		return r, fmt.Errorf("refresh script answered share %q, want a number in [0, 1]", s)
	}
	r.share = share
	r.epoch, _ = v[1].(string)
	n, _ := v[2].(int64)
	r.members = int(n)
	r.coolMS, _ = v[3].(int64)
	r.coolMS = min(r.coolMS, int64(time.Hour/time.Millisecond))
	lim, _ := v[4].([]any)
	for i := 0; i+1 < len(lim) && len(r.limits) < 16; i += 2 {
		f, _ := lim[i].(string)
		q, _ := lim[i+1].(string)
		unit, win, ok := strings.Cut(f, " ")
		ms, err1 := strconv.ParseInt(win, 10, 64)
		quota, err2 := strconv.ParseInt(q, 10, 64)
		if !ok || err1 != nil || err2 != nil || ms <= 0 || quota <= 0 || !slices.Contains(limiter.Units, limiter.Unit(unit)) {
			continue
		}
		r.limits = append(r.limits, limiter.Policy{Unit: limiter.Unit(unit), Window: time.Duration(ms) * time.Millisecond, Quota: quota})
	}
	rec, _ := v[5].(int64)
	r.recovering = rec == 1
	return r, nil
}

// coolMsg is a cooldown on the pub/sub channel. It carries a duration, not
// a time: the daemons' clocks may differ.
type coolMsg struct {
	Service string `json:"s"`
	MS      int64  `json:"ms"`
	From    string `json:"m"`
}

// watch publishes a cooldown this daemon's limiter started (a 429 or a
// subscription rejected reported here) as soon as the limiter says so.
func (m *Member) watch(ctx context.Context) {
	ch, cancel := m.lim.Subscribe()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
		}
		m.watchOnce(ctx)
		// At most one look per watchEvery: changes meanwhile coalesce in
		// ch, and a busy limiter's every grant is not worth a look.
		select {
		case <-ctx.Done():
			return
		case <-time.After(watchEvery):
		}
	}
}

// watchEvery bounds how often watch reads the demand; it adds at most this
// much to a cooldown's way to the other daemons.
const watchEvery = 2 * time.Millisecond

// watchOnce publishes a new local cooldown and notes a backlog.
func (m *Member) watchOnce(ctx context.Context) {
	for _, s := range m.services {
		d, err := m.lim.Demand(s)
		if err != nil {
			continue
		}
		m.mu.Lock()
		st := m.svc[s]
		if d.Backlog {
			st.sawBacklog = true
			st.lastTop, st.lastWeight = d.Top, d.Weight
		}
		if d.CooldownUntil.IsZero() {
			m.mu.Unlock()
			continue
		}
		news := d.CooldownUntil.After(st.coolKnown.Add(5 * time.Millisecond))
		if news {
			st.coolKnown, st.coolLocal = d.CooldownUntil, d.CooldownUntil
		}
		m.mu.Unlock()
		if !news {
			continue
		}
		left := d.CooldownUntil.Sub(m.lim.Now())
		msg, _ := json.Marshal(coolMsg{Service: s, MS: max(1, left.Milliseconds()), From: m.id})
		pctx, pcancel := context.WithTimeout(ctx, m.cfg.timeout())
		err = m.rdb.Publish(pctx, channel(m.cfg.Name), msg).Err()
		pcancel()
		if err != nil {
			m.log.Warn("cluster: publishing a cooldown (the next refresh carries it)", "service", s, "err", redisError(err))
			continue
		}
		m.published.Add(1)
		m.log.Info("cluster: cooldown published", "service", s, "for", left.Round(time.Millisecond))
	}
}

// subscribe applies the cooldowns other daemons publish. go-redis
// reconnects the subscription by itself when Redis comes back.
func (m *Member) subscribe(ctx context.Context) {
	ps := m.rdb.Subscribe(ctx, channel(m.cfg.Name))
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			var c coolMsg
			if err := json.Unmarshal([]byte(msg.Payload), &c); err != nil || c.From == m.id || c.MS <= 0 {
				continue
			}
			m.mu.Lock()
			st := m.svc[c.Service]
			var until time.Time
			if st != nil {
				until = m.lim.Now().Add(time.Duration(min(c.MS, int64(time.Hour/time.Millisecond))) * time.Millisecond)
				if until.After(st.coolKnown) {
					st.coolKnown = until
				} else {
					st = nil
				}
			}
			m.mu.Unlock()
			if st == nil {
				continue
			}
			m.received.Add(1)
			if err := m.lim.ApplyCooldown(c.Service, until); err != nil {
				m.log.Warn("cluster: applying a cooldown", "service", c.Service, "err", err)
			}
		}
	}
}

// redisLog sends go-redis's own messages (pool dial failures and the like,
// which name the address, never the password) to the daemon's log at debug
// level instead of the process's stderr: the member already logs each
// change of state once.
type redisLog struct{ log *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.log.Debug("cluster: redis client: " + fmt.Sprintf(format, v...))
}
