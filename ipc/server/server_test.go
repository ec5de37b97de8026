package server_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/internal/ipctest"
	"github.com/quotabar/quotabar/ipc/server"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

func TestClientEndToEnd(t *testing.T) {
	fb := ipctest.NewFallback()
	d := ipctest.StartDaemon(t, ipctest.TestConfig(), fb)
	c := d.Client
	ctx := context.Background()

	if err := c.Health(ctx); err != nil {
		t.Fatalf("health: %v", err)
	}

	lease, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "research", Service: "openai", Cost: wire.Cost{"tokens": 1200}, Priority: "high", MaxWaitMS: wire.Wait(time.Second)})
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	if lease.ID == "" || lease.Agent != "research" || lease.Service != "openai" {
		t.Errorf("lease %+v", lease)
	}
	if ttl := time.Until(lease.ExpiresAt); ttl <= 0 || ttl > ipctest.LeaseTTL {
		t.Errorf("lease expires in %v, want within the lease TTL %v", ttl, ipctest.LeaseTTL)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	svc := ipctest.ServiceOf(t, st, "openai")
	if svc.InFlight != 1 || svc.Counters.Granted != 1 {
		t.Errorf("after acquire: in_flight %d granted %d, want 1 and 1", svc.InFlight, svc.Counters.Granted)
	}
	if r := svc.Limits[0].Remaining; r != 999 {
		t.Errorf("requests remaining %d, want 999: a cost of tokens alone still costs its request", r)
	}
	if tok := svc.Limits[1].Remaining; tok != 100000-1200 {
		t.Errorf("tokens remaining %d, want %d", tok, 100000-1200)
	}
	if svc.Fallback == nil || svc.Fallback.Browser != "system" {
		t.Errorf("openai has a fallback, status shows %+v", svc.Fallback)
	}
	if ipctest.ServiceOf(t, st, "cool").Fallback != nil {
		t.Error("cool has no fallback but status shows one")
	}

	rep, err := c.Report(ctx, wire.ReportRequest{Lease: lease.ID, Status: 200, Usage: wire.Cost{"tokens": 800},
		Headers: map[string]string{"x-ratelimit-remaining-requests": "990"}})
	if err != nil || !rep.OK || rep.CooldownUntil != nil || rep.RetryAfterMS != nil {
		t.Fatalf("report: %+v, %v", rep, err)
	}
	if _, err := c.Report(ctx, wire.ReportRequest{Lease: lease.ID}); apiCode(err) != "unknown_lease" {
		t.Errorf("second report of a lease: %v, want unknown_lease", err)
	}
	// An observation: a call made without asking.
	if _, err := c.Report(ctx, wire.ReportRequest{Agent: "research", Service: "openai", Status: 200}); err != nil {
		t.Errorf("observation: %v", err)
	}

	// Pausing a service refuses its acquires with reason paused.
	ss, err := c.SetServicePaused(ctx, "openai", true)
	if err != nil || !ss.Paused || ss.Name != "openai" {
		t.Fatalf("pause: %+v, %v", ss, err)
	}
	_, err = c.Acquire(ctx, wire.AcquireRequest{Agent: "a1", Service: "openai"})
	var refused *ipc.RefusedError
	if !errors.As(err, &refused) || refused.Reason != "paused" {
		t.Fatalf("acquire on a paused service: %v, want refused paused", err)
	}
	if refused.Fallback == nil || refused.Fallback.Open != "/v1/services/openai/fallback/open" || refused.Fallback.Enabled {
		t.Errorf("refusal fallback %+v", refused.Fallback)
	}
	if ss, err := c.SetServicePaused(ctx, "openai", false); err != nil || ss.Paused {
		t.Fatalf("resume: %+v, %v", ss, err)
	}

	as, err := c.UpdateAgent(ctx, "a1", wire.AgentUpdate{Priority: "low"})
	if err != nil || as.Priority != "low" || as.Paused {
		t.Fatalf("update agent: %+v, %v", as, err)
	}
	paused := true
	if as, err = c.UpdateAgent(ctx, "a1", wire.AgentUpdate{Paused: &paused}); err != nil || !as.Paused || as.Priority != "low" {
		t.Fatalf("pause agent: %+v, %v", as, err)
	}
	if _, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "a1", Service: "openai"}); !errors.As(err, &refused) || refused.Reason != "paused" {
		t.Fatalf("acquire by a paused agent: %v", err)
	}

	// Web fallback: off → 409, on → open and close.
	if _, err := c.OpenFallback(ctx, "openai", "a1"); apiCode(err) != "fallback_disabled" {
		t.Errorf("open while disabled: %v", err)
	}
	if info, err := c.SetFallback(ctx, "openai", true); err != nil || !info.Enabled {
		t.Fatalf("enable fallback: %+v, %v", info, err)
	}
	res, err := c.OpenFallback(ctx, "openai", "a1")
	if err != nil || res.Browser != "chrome" || res.TargetID != "T1" || res.CDPURL == "" {
		t.Fatalf("open: %+v, %v", res, err)
	}
	st, _ = c.Status(ctx)
	if fbs := ipctest.ServiceOf(t, st, "openai").Fallback; fbs == nil || !fbs.Enabled || fbs.OpenSessions != 1 {
		t.Errorf("status fallback after open: %+v", fbs)
	}
	if err := c.CloseFallback(ctx, "openai", wire.CloseRequest{TargetID: "T1"}); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := c.CloseFallback(ctx, "openai", wire.CloseRequest{TargetID: "T1"}); apiCode(err) != "not_found" {
		t.Errorf("close twice: %v", err)
	}

	// Events: the first is the state at connect.
	// The deadline ends the stream, so a missing event fails the test
	// instead of hanging it.
	ectx, cancel := context.WithTimeout(ctx, 15*time.Second)
	events, eventsErr := ipctest.Events(ectx, c)
	first := <-events
	if a, _ := ipctest.AgentOf(first, "a1"); !a.Paused {
		t.Errorf("first event does not show a1 paused: %+v", first.Agents)
	}
	if _, err := c.SetServicePaused(ctx, "cool", true); err != nil {
		t.Fatal(err)
	}
	sawPause := false
	for ev := range events {
		if ipctest.ServiceOf(t, ev, "cool").Paused {
			sawPause = true
			break
		}
	}
	if !sawPause {
		t.Errorf("no event showed the pause of cool (stream error: %v)", *eventsErr)
	}
	cancel()
	for range events { // drains, then closes: the stream ended
	}
}

func apiCode(err error) string {
	var ae *wire.APIError
	if errors.As(err, &ae) {
		return string(ae.Code)
	}
	return ""
}

func TestRawHTTP(t *testing.T) {
	d := ipctest.StartDaemon(t, ipctest.TestConfig(), ipctest.NewFallback())
	hc := ipctest.RawHTTP(d.Path)

	r := ipctest.DoRaw(t, hc, "GET", "/v1/health", nil)
	if r.Status != 200 || string(r.Body) != `{"ok":true,"version":"`+wire.Version+`"}`+"\n" {
		t.Fatalf("health: %d %s", r.Status, r.Body)
	}

	r = ipctest.DoRaw(t, hc, "POST", "/v1/acquire", ipctest.Str(`{"agent":"research-1","service":"tiny","cost":{"requests":1},"max_wait_ms":1000}`))
	m := r.JSON(t)
	if r.Status != 200 || m["granted"] != true || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("acquire: %d %s", r.Status, r.Body)
	}
	lease, _ := m["lease"].(string)
	if _, ok := m["waited_ms"].(float64); !ok || lease == "" {
		t.Errorf("acquire body %s", r.Body)
	}
	if _, err := time.Parse(time.RFC3339, m["lease_expires_at"].(string)); err != nil {
		t.Errorf("lease_expires_at: %v", err)
	}

	// tiny's one request an hour is spent: refused at once, with a
	// Retry-After that is retry_after_ms rounded up to seconds.
	r = ipctest.DoRaw(t, hc, "POST", "/v1/acquire", ipctest.Str(`{"agent":"research-1","service":"tiny","max_wait_ms":0}`))
	m = r.JSON(t)
	if r.Status != 429 || m["granted"] != false || m["reason"] != "timeout" {
		t.Fatalf("refusal: %d %s", r.Status, r.Body)
	}
	ms := int64(m["retry_after_ms"].(float64))
	secs, err := strconv.ParseInt(r.Header.Get("Retry-After"), 10, 64)
	if err != nil || secs != (ms+999)/1000 || ms < 1000 {
		t.Errorf("Retry-After %q for retry_after_ms %d", r.Header.Get("Retry-After"), ms)
	}
	if fb, _ := m["fallback"].(map[string]any); fb == nil || fb["enabled"] != false || fb["open"] != "/v1/services/tiny/fallback/open" {
		t.Errorf("refusal fallback: %s", r.Body)
	}
	if _, ok := m["error"]; ok {
		t.Error("a refusal has no error object")
	}

	r = ipctest.DoRaw(t, hc, "POST", "/v1/report", ipctest.Str(`{"lease":"`+lease+`","status":200,"usage":{"requests":1}}`))
	if r.Status != 200 || string(r.Body) != `{"ok":true,"cooldown_until":null}`+"\n" {
		t.Fatalf("report: %d %s", r.Status, r.Body)
	}

	// A 429 report puts the service into a cooldown.
	r = ipctest.DoRaw(t, hc, "POST", "/v1/report", ipctest.Str(`{"agent":"research-1","service":"cool","status":429,"headers":{"Retry-After":"20"}}`))
	m = r.JSON(t)
	if r.Status != 200 || m["cooldown_until"] == nil || m["retry_after_ms"] == nil {
		t.Fatalf("429 report: %d %s", r.Status, r.Body)
	}
	until, err := time.Parse(time.RFC3339, m["cooldown_until"].(string))
	if err != nil || time.Until(until) < 15*time.Second || time.Until(until) > 21*time.Second {
		t.Errorf("cooldown_until %v, want about 20s from now", m["cooldown_until"])
	}
	r = ipctest.DoRaw(t, hc, "POST", "/v1/acquire", ipctest.Str(`{"agent":"research-1","service":"cool","max_wait_ms":0}`))
	if m = r.JSON(t); r.Status != 429 || m["reason"] != "cooldown" || m["fallback"] != nil {
		t.Errorf("acquire while cooling: %d %s", r.Status, r.Body)
	}

	r = ipctest.DoRaw(t, hc, "GET", "/v1/status", nil)
	m = r.JSON(t)
	if r.Status != 200 || m["version"] != wire.Version {
		t.Fatalf("status: %d %s", r.Status, r.Body)
	}
	services := m["services"].([]any)
	byName := map[string]map[string]any{}
	for _, s := range services {
		s := s.(map[string]any)
		byName[s["name"].(string)] = s
	}
	openai := byName["openai"]
	for _, k := range []string{"name", "paused", "limits", "max_concurrent", "in_flight", "queued", "cooldown_until", "fallback", "counters"} {
		if _, ok := openai[k]; !ok {
			t.Errorf("service status lacks %q: %v", k, openai)
		}
	}
	if openai["cooldown_until"] != nil || byName["cool"]["cooldown_until"] == nil {
		t.Errorf("cooldown_until: openai %v, cool %v", openai["cooldown_until"], byName["cool"]["cooldown_until"])
	}
	lim := openai["limits"].([]any)[0].(map[string]any)
	if lim["unit"] != "requests" || lim["quota"] != 1000.0 || lim["window_ms"] != 60000.0 || lim["source"] != "config" {
		t.Errorf("limit %v", lim)
	}
	for _, k := range []string{"remaining", "resets_at"} {
		if _, ok := lim[k]; !ok {
			t.Errorf("limit lacks %q", k)
		}
	}
	counters := byName["cool"]["counters"].(map[string]any)
	if counters["provider_429"] != 1.0 || counters["refused"] != 1.0 {
		t.Errorf("cool counters %v", counters)
	}
	agent := m["agents"].([]any)
	found := false
	for _, a := range agent {
		a := a.(map[string]any)
		if a["name"] != "research-1" {
			continue
		}
		found = true
		for _, k := range []string{"priority", "weight", "paused", "last_seen", "in_flight", "queued", "counters"} {
			if _, ok := a[k]; !ok {
				t.Errorf("agent lacks %q: %v", k, a)
			}
		}
		if a["priority"] != "normal" || a["weight"] != 1.0 {
			t.Errorf("agent %v", a)
		}
	}
	if !found {
		t.Errorf("agent research-1 not in status: %s", r.Body)
	}

	r = ipctest.DoRaw(t, hc, "PUT", "/v1/services/openai", ipctest.Str(`{"paused":true}`))
	if m = r.JSON(t); r.Status != 200 || m["paused"] != true || m["name"] != "openai" || m["limits"] == nil {
		t.Errorf("PUT service: %d %s", r.Status, r.Body)
	}
	r = ipctest.DoRaw(t, hc, "PUT", "/v1/services/openai", ipctest.Str(`{}`))
	if m = r.JSON(t); r.Status != 200 || m["paused"] != true {
		t.Errorf("PUT service without fields changes nothing: %d %s", r.Status, r.Body)
	}
	r = ipctest.DoRaw(t, hc, "PUT", "/v1/agents/research-1", ipctest.Str(`{"paused":true,"priority":"low"}`))
	if m = r.JSON(t); r.Status != 200 || m["paused"] != true || m["priority"] != "low" || m["name"] != "research-1" {
		t.Errorf("PUT agent: %d %s", r.Status, r.Body)
	}
	r = ipctest.DoRaw(t, hc, "PUT", "/v1/services/tiny/fallback", ipctest.Str(`{"enabled":true}`))
	if r.Status != 200 || string(r.Body) != `{"browser":"system","enabled":true,"open_sessions":0}`+"\n" {
		t.Errorf("PUT fallback: %d %s", r.Status, r.Body)
	}
	r = ipctest.DoRaw(t, hc, "POST", "/v1/services/tiny/fallback/open", ipctest.Str(`{"agent":"research-1"}`))
	if m = r.JSON(t); r.Status != 200 || m["browser"] != "chrome" || m["cdp_url"] == nil || m["target_id"] != "T1" || m["webdriver_url"] != nil {
		t.Errorf("open: %d %s", r.Status, r.Body)
	}
	r = ipctest.DoRaw(t, hc, "POST", "/v1/services/tiny/fallback/close", ipctest.Str(`{"target_id":"T1"}`))
	if r.Status != 200 || string(r.Body) != `{"ok":true}`+"\n" {
		t.Errorf("close: %d %s", r.Status, r.Body)
	}

	// Events over raw HTTP: the stream's framing.
	req, _ := http.NewRequest("GET", "http://x/v1/events", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := hc.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	buf := make([]byte, 0, 64<<10)
	for !strings.Contains(string(buf), "\n\n") {
		n, err := resp.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			t.Fatalf("reading the first event: %v (%q)", err, buf)
		}
	}
	if !strings.HasPrefix(string(buf), "event: status\ndata: {\"version\":") {
		t.Errorf("first event %q", buf)
	}
}

func TestShutdownAnswersWaiters(t *testing.T) {
	d := ipctest.StartDaemon(t, ipctest.TestConfig(), nil)
	ctx := context.Background()
	if _, err := d.Client.Acquire(ctx, wire.AcquireRequest{Agent: "a", Service: "tiny"}); err != nil {
		t.Fatal(err)
	}
	const waiters = 5
	errs := make(chan error, waiters)
	for range waiters {
		go func() {
			_, err := d.Client.Acquire(ctx, wire.AcquireRequest{Agent: "a", Service: "tiny", MaxWaitMS: wire.Wait(10 * time.Minute)})
			errs <- err
		}()
	}
	ectx, ecancel := context.WithTimeout(ctx, 15*time.Second)
	defer ecancel()
	events, eventsErr := ipctest.Events(ectx, d.Client)
	testenv.WaitFor(t, 15*time.Second, "the waiters to queue", func() bool { return ipctest.ServiceOf(t, d.Srv.Status(), "tiny").Queued == waiters })

	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.Srv.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for range waiters {
		err := <-errs
		var ae *wire.APIError
		if !errors.As(err, &ae) || ae.Status != 503 || ae.Code != "shutting_down" {
			t.Errorf("waiter got %v, want 503 shutting_down", err)
		}
	}
	for range events { // the stream ends
	}
	if ectx.Err() != nil {
		t.Error("the event stream did not end at shutdown")
	}
	if !errors.Is(*eventsErr, io.ErrUnexpectedEOF) {
		t.Errorf("the event stream ended with %v, want an error saying the daemon ended it", *eventsErr)
	}
	if err := <-d.Served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	d.Served <- http.ErrServerClosed // for the cleanup's check
	if _, err := os.Lstat(d.Path); err == nil {
		t.Error("the socket file is still there after shutdown")
	}
	if err := d.Client.Health(ctx); err == nil {
		t.Error("health answered after shutdown")
	}
}

func TestBadInput(t *testing.T) {
	d := ipctest.StartDaemon(t, ipctest.TestConfig(), nil)
	hc := ipctest.RawHTTP(d.Path)
	ctx := context.Background()
	// A lease held across the table: bad requests must not disturb it.
	held, err := d.Client.Acquire(ctx, wire.AcquireRequest{Agent: "keeper", Service: "openai"})
	if err != nil {
		t.Fatal(err)
	}

	big := `{"agent":"a","service":"openai","pad":"` + strings.Repeat("x", 1<<20) + `"}`
	long := strings.Repeat("a", 65)
	tests := []struct {
		name         string
		method, path string
		body         io.Reader
		hdr          []string
		status       int
		code         string
		msg          string // a word the message must contain
	}{
		{"malformed JSON", "POST", "/v1/acquire", ipctest.Str(`{"agent": "a",`), nil, 400, "bad_request", "JSON"},
		{"trailing garbage", "POST", "/v1/acquire", ipctest.Str(`{"agent":"a","service":"openai"} x`), nil, 400, "bad_request", "JSON"},
		{"not an object", "POST", "/v1/acquire", ipctest.Str(`[1,2]`), nil, 400, "bad_request", "object"},
		{"empty body", "POST", "/v1/acquire", ipctest.Str(``), nil, 400, "bad_request", "empty"},
		{"agent not a string", "POST", "/v1/acquire", ipctest.Str(`{"agent":5,"service":"openai"}`), nil, 400, "bad_request", "agent"},
		{"cost not an object", "POST", "/v1/acquire", ipctest.Str(`{"agent":"a","service":"openai","cost":3}`), nil, 400, "bad_request", "cost"},
		{"cost a string", "POST", "/v1/acquire", ipctest.Str(`{"agent":"a","service":"openai","cost":{"requests":"3"}}`), nil, 400, "bad_request", "cost.requests"},
		{"cost fractional", "POST", "/v1/acquire", ipctest.Str(`{"agent":"a","service":"openai","cost":{"tokens":1.5}}`), nil, 400, "bad_request", "cost.tokens"},
		{"cost negative", "POST", "/v1/acquire", ipctest.Str(`{"agent":"a","service":"openai","cost":{"requests":-1}}`), nil, 400, "bad_request", "non-negative"},
		{"cost of an unknown unit negative", "POST", "/v1/acquire", ipctest.Str(`{"agent":"a","service":"openai","cost":{"widgets":-1}}`), nil, 400, "bad_request", "cost.widgets"},
		{"cost over quota", "POST", "/v1/acquire", ipctest.Str(`{"agent":"a","service":"tiny","cost":{"requests":2}}`), nil, 400, "cost_exceeds_quota", "tiny"},
		{"missing agent", "POST", "/v1/acquire", ipctest.Str(`{"service":"openai"}`), nil, 400, "bad_request", "agent is required"},
		{"missing service", "POST", "/v1/acquire", ipctest.Str(`{"agent":"a"}`), nil, 400, "bad_request", "service is required"},
		{"bad agent name", "POST", "/v1/acquire", ipctest.Str(`{"agent":"bad name!","service":"openai"}`), nil, 400, "bad_request", "agent"},
		{"agent name too long", "POST", "/v1/acquire", ipctest.Str(`{"agent":"` + long + `","service":"openai"}`), nil, 400, "bad_request", "64"},
		{"unknown priority", "POST", "/v1/acquire", ipctest.Str(`{"agent":"a","service":"openai","priority":"urgent"}`), nil, 400, "bad_request", "high, normal, low"},
		{"priority not a string", "POST", "/v1/acquire", ipctest.Str(`{"agent":"a","service":"openai","priority":1}`), nil, 400, "bad_request", "priority"},
		{"max_wait_ms negative", "POST", "/v1/acquire", ipctest.Str(`{"agent":"a","service":"openai","max_wait_ms":-1}`), nil, 400, "bad_request", "max_wait_ms"},
		{"max_wait_ms too long", "POST", "/v1/acquire", ipctest.Str(`{"agent":"a","service":"openai","max_wait_ms":600001}`), nil, 400, "bad_request", "600000"},
		{"max_wait_ms fractional", "POST", "/v1/acquire", ipctest.Str(`{"agent":"a","service":"openai","max_wait_ms":1.5}`), nil, 400, "bad_request", "max_wait_ms"},
		{"unknown service", "POST", "/v1/acquire", ipctest.Str(`{"agent":"a","service":"opneai"}`), nil, 404, "unknown_service", "openai"},
		{"unknown fields and units ignored", "POST", "/v1/acquire", ipctest.Str(`{"agent":"a","service":"openai","colour":"red","cost":{"requests":1,"widgets":7},"max_wait_ms":0}`), nil, 200, "", ""},
		{"1 MiB body", "POST", "/v1/acquire", ipctest.Str(big), nil, 413, "too_large", "65536"},
		{"1 MiB body without a length", "POST", "/v1/acquire", io.MultiReader(ipctest.Str(big)), nil, 413, "too_large", "65536"},
		{"unknown lease", "POST", "/v1/report", ipctest.Str(`{"lease":"l_nope"}`), nil, 404, "unknown_lease", "l_nope"},
		{"report without lease or agent", "POST", "/v1/report", ipctest.Str(`{"service":"openai"}`), nil, 400, "bad_request", "agent is required"},
		{"report status out of range", "POST", "/v1/report", ipctest.Str(`{"agent":"a","service":"openai","status":1000}`), nil, 400, "bad_request", "status"},
		{"report headers not strings", "POST", "/v1/report", ipctest.Str(`{"agent":"a","service":"openai","headers":{"retry-after":20}}`), nil, 400, "bad_request", "headers"},
		{"report usage negative", "POST", "/v1/report", ipctest.Str(`{"agent":"a","service":"openai","usage":{"tokens":-5}}`), nil, 400, "bad_request", "usage.tokens"},
		{"report unknown service", "POST", "/v1/report", ipctest.Str(`{"agent":"a","service":"nope"}`), nil, 404, "unknown_service", "openai"},
		{"report unparseable headers ignored", "POST", "/v1/report", ipctest.Str(`{"agent":"a","service":"openai","headers":{"x-ratelimit-reset-requests":"soon","retry-after":"?"}}`), nil, 200, "", ""},
		{"pause unknown service", "PUT", "/v1/services/nope", ipctest.Str(`{"paused":true}`), nil, 404, "unknown_service", "openai"},
		{"paused not a bool", "PUT", "/v1/services/openai", ipctest.Str(`{"paused":"yes"}`), nil, 400, "bad_request", "paused"},
		{"bad agent name in path", "PUT", "/v1/agents/bad%20name", ipctest.Str(`{"paused":true}`), nil, 400, "bad_request", "agent name"},
		{"agent priority unknown", "PUT", "/v1/agents/a", ipctest.Str(`{"priority":"urgent"}`), nil, 400, "bad_request", "priority"},
		{"fallback of a service without one", "PUT", "/v1/services/openai/fallback", ipctest.Str(`{"enabled":true}`), nil, 404, "not_found", "fallback"},
		{"fallback of an unknown service", "POST", "/v1/services/nope/fallback/open", ipctest.Str(`{}`), nil, 404, "unknown_service", "openai"},
		{"wrong method", "GET", "/v1/acquire", nil, nil, 405, "method_not_allowed", "POST"},
		{"wrong method on status", "DELETE", "/v1/status", nil, nil, 405, "method_not_allowed", "GET"},
		{"unknown path", "GET", "/v1/nothing", nil, nil, 404, "not_found", "/v1/nothing"},
		{"Origin header", "GET", "/v1/status", nil, []string{"Origin", "http://evil.example"}, 403, "forbidden", "Origin"},
		{"Referer header", "POST", "/v1/acquire", ipctest.Str(`{"agent":"a","service":"openai"}`), []string{"Referer", "http://evil.example/"}, 403, "forbidden", "Referer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ipctest.DoRaw(t, hc, tt.method, tt.path, tt.body, tt.hdr...)
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.status, string(r.Body[:min(len(r.Body), 200)]))
			}
			if tt.code == "" {
				return
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			e, _ := r.JSON(t)["error"].(map[string]any)
			if e == nil || e["code"] != tt.code {
				t.Fatalf("body %s, want code %q", r.Body, tt.code)
			}
			if msg, _ := e["message"].(string); !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q does not mention %q", msg, tt.msg)
			}
			if tt.status == 405 && r.Header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
		})
	}

	// Still serving, and nothing was lost.
	if err := d.Client.Health(ctx); err != nil {
		t.Fatalf("health after bad input: %v", err)
	}
	if _, err := d.Client.Report(ctx, wire.ReportRequest{Lease: held.ID}); err != nil {
		t.Errorf("the lease held across bad input was lost: %v", err)
	}
	if _, err := d.Client.Acquire(ctx, wire.AcquireRequest{Agent: "keeper", Service: "openai"}); err != nil {
		t.Errorf("acquire after bad input: %v", err)
	}
}

func TestHandleExtension(t *testing.T) {
	d := ipctest.StartDaemon(t, ipctest.TestConfig(), nil)
	d.Srv.Handle("GET /v1/extra", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		server.WriteJSON(w, http.StatusOK, wire.OKResponse{OK: true})
	}))
	hc := ipctest.RawHTTP(d.Path)
	tests := []struct {
		method string
		hdr    []string
		status int
		code   string
	}{
		{"GET", nil, 200, ""},
		{"POST", nil, 405, "method_not_allowed"},
		{"GET", []string{"Origin", "https://example.com"}, 403, "forbidden"},
	}
	for _, tt := range tests {
		r := ipctest.DoRaw(t, hc, tt.method, "/v1/extra", nil, tt.hdr...)
		if r.Status != tt.status {
			t.Errorf("%s with %v: %d, want %d", tt.method, tt.hdr, r.Status, tt.status)
			continue
		}
		if e, _ := r.JSON(t)["error"].(map[string]any); tt.code != "" && (e == nil || e["code"] != tt.code) {
			t.Errorf("%s with %v: %s, want code %s", tt.method, tt.hdr, r.Body, tt.code)
		}
	}
}

func TestZeroClient(t *testing.T) {
	d := ipctest.StartDaemon(t, ipctest.TestConfig(), nil)
	t.Setenv("QUOTABAR_SOCKET", d.Path)
	var c ipc.Client
	defer c.CloseIdleConnections()
	if err := c.Health(context.Background()); err != nil {
		t.Fatalf("zero Client with QUOTABAR_SOCKET: %v", err)
	}

	gone := &ipc.Client{SocketPath: d.Path + ".missing"}
	err := gone.Health(context.Background())
	if err == nil || !strings.Contains(err.Error(), "is it running") {
		t.Errorf("no daemon: %v, want an error that says what to do", err)
	}
}

// TestReportOverflowingUsage: a usage number past int64 (a provider's
// nonsense passed on) still ends the lease, so its slot is not held until
// the lease's TTL.
func TestReportOverflowingUsage(t *testing.T) {
	cfg := limiter.Config{LeaseTTL: time.Hour, Services: []limiter.ServiceConfig{{
		Name: "one", MaxConcurrent: 1,
		Limits: []limiter.Policy{{Quota: 1000, Unit: limiter.Requests, Window: time.Minute}},
	}}}
	d := ipctest.StartDaemon(t, cfg, nil)
	ctx := context.Background()
	lease, err := d.Client.Acquire(ctx, wire.AcquireRequest{Agent: "a", Service: "one"})
	if err != nil {
		t.Fatal(err)
	}
	hc := ipctest.RawHTTP(d.Path)
	r := ipctest.DoRaw(t, hc, "POST", "/v1/report", ipctest.Str(`{"lease":"`+lease.ID+`","status":200,"usage":{"tokens":99999999999999999999999}}`))
	if r.Status != 200 {
		t.Fatalf("report with an overflowing usage: %d %s, want 200", r.Status, r.Body)
	}
	if in := ipctest.ServiceOf(t, d.Srv.Status(), "one").InFlight; in != 0 {
		t.Errorf("in flight %d after the report, want 0 (the lease ended)", in)
	}
	// Still refused: a signed or fractional number is not a usage.
	for _, bad := range []string{`-99999999999999999999999`, `1.5`, `1e30`} {
		r := ipctest.DoRaw(t, hc, "POST", "/v1/report", ipctest.Str(`{"agent":"a","service":"one","usage":{"tokens":`+bad+`}}`))
		if r.Status != 400 || !strings.Contains(string(r.Body), "non-negative integer") {
			t.Errorf("usage %s: %d %s, want 400 naming what is allowed", bad, r.Status, r.Body)
		}
	}
}

// TestResetService: an answer that froze a service (a 429 asking for days,
// and a learned limit) is cleared by POST /v1/services/{name}/reset, and
// the service grants again; the change is persisted before the answer.
func TestResetService(t *testing.T) {
	cfg := ipctest.TestConfig()
	cfg.Services = append(cfg.Services, limiter.ServiceConfig{Name: "learner", Dialect: limiter.DialectOpenAI})
	d := ipctest.StartDaemon(t, cfg, nil)
	ctx := context.Background()
	hc := ipctest.RawHTTP(d.Path)
	for _, svc := range []string{"cool", "learner"} {
		lease, err := d.Client.Acquire(ctx, wire.AcquireRequest{Agent: "a", Service: svc})
		if err != nil {
			t.Fatal(err)
		}
		hdr := map[string]string{"retry-after": "86400"}
		if svc == "learner" {
			hdr = map[string]string{"x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20h"}
		}
		if _, err := d.Client.Report(ctx, wire.ReportRequest{Lease: lease.ID, Status: 429, Headers: hdr}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Client.Acquire(ctx, wire.AcquireRequest{Agent: "a", Service: svc, MaxWaitMS: wire.Wait(0)}); !ipc.IsRefused(err) {
			t.Fatalf("%s: acquire after the freezing answer = %v, want a refusal", svc, err)
		}
		st, err := d.Client.ResetService(ctx, svc)
		if err != nil {
			t.Fatalf("reset %s: %v", svc, err)
		}
		if st.CooldownUntil != nil {
			t.Errorf("%s: cooldown_until %v after reset, want null", svc, st.CooldownUntil)
		}
		for _, l := range st.Limits {
			if l.Source == "headers" {
				t.Errorf("%s: a learned limit survived the reset: %+v", svc, l)
			}
		}
		if _, err := d.Client.Acquire(ctx, wire.AcquireRequest{Agent: "a", Service: svc, MaxWaitMS: wire.Wait(0)}); err != nil {
			t.Errorf("%s: acquire after reset = %v, want a grant", svc, err)
		}
	}
	r := ipctest.DoRaw(t, hc, "POST", "/v1/services/opneai/reset", nil)
	if m := r.JSON(t); r.Status != 404 || m["error"].(map[string]any)["code"] != "unknown_service" {
		t.Errorf("reset of an unknown service: %d %s, want 404 unknown_service", r.Status, r.Body)
	}
	r = ipctest.DoRaw(t, hc, "GET", "/v1/services/cool/reset", nil)
	if r.Status != 405 {
		t.Errorf("GET reset: %d %s, want 405", r.Status, r.Body)
	}
}
