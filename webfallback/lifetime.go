package webfallback

import (
	"context"
	"time"
)

// DefaultIdleTimeout is how long a browser of the Manager stays open with
// no agent attached: long enough to sign in by hand, short enough that a
// signed-in browser does not sit open for the rest of the day.
const DefaultIdleTimeout = 15 * time.Minute

// Reasons given to Options.OnClosed.
const (
	ClosedIdle   = "idle"   // no agent used the browser for the idle timeout
	ClosedExited = "exited" // the browser exited on its own (window closed, crash)
)

func (m *Manager) idleTimeout() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.opts.IdleTimeout > 0 {
		return m.opts.IdleTimeout
	}
	return DefaultIdleTimeout
}

// checkEvery is how often the idle timeout is looked at: a quarter of it,
// so that a browser closes at most a quarter late.
func checkEvery(idle time.Duration) time.Duration {
	return min(max(idle/4, 10*time.Millisecond), 15*time.Second)
}

func (m *Manager) notifyClosed(service, reason string) {
	if m.opts.OnClosed != nil {
		m.opts.OnClosed(service, reason)
	}
}

// watchChrome enforces the idle timeout of a browser: a tab whose agents
// all left for the timeout is closed and its secret revoked; the browser
// closes once no tab handed out by Open is left for the timeout.
func (m *Manager) watchChrome(s *service, cb *chromeBrowser) {
	idle := m.idleTimeout()
	tick := time.NewTicker(checkEvery(idle))
	defer tick.Stop()
	for {
		select {
		case <-cb.gone:
			if !cb.closing.Load() && m.forgetChrome(s, cb) {
				cb.log.Info("browser exited")
				m.notifyClosed(s.name, ClosedExited)
			}
			return
		case now := <-tick.C:
			for _, id := range cb.relay.idleTargets(now, idle) {
				cb.log.Info("closing a tab no agent used for the idle timeout", "target", id, "idle_timeout", idle)
				ctx, cancel := context.WithTimeout(context.Background(), probeWait)
				if err := cb.closeTab(ctx, id); err != nil {
					cb.log.Debug("closing an idle tab", "err", err)
				}
				cancel()
			}
			if cb.relay.emptyFor(now, idle) && m.closeIdleChrome(s, cb, idle) {
				return
			}
		}
	}
}

// forgetChrome drops a browser that exited from its service; false when the
// Manager had already let go of it (it closed it itself).
func (m *Manager) forgetChrome(s *service, cb *chromeBrowser) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.chrome != cb {
		return false
	}
	s.chrome = nil
	return true
}

// closeIdleChrome closes the service's browser if it is still cb and still
// idle (an Open may have come in meanwhile).
func (m *Manager) closeIdleChrome(s *service, cb *chromeBrowser, idle time.Duration) bool {
	s.op.Lock()
	defer s.op.Unlock()
	s.mu.Lock()
	cur := s.chrome
	s.mu.Unlock()
	if cur != cb {
		return true // closed or replaced meanwhile
	}
	if !cb.relay.emptyFor(time.Now(), idle) {
		return false
	}
	cb.log.Info("closing the browser: no agent used it for the idle timeout", "idle_timeout", idle)
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace+killGrace)
	defer cancel()
	if err := cb.close(ctx); err != nil {
		cb.log.Error("closing an idle browser", "err", err)
	}
	m.forgetChrome(s, cb)
	m.notifyClosed(s.name, ClosedIdle)
	return true
}

// watchWebKit enforces the idle timeout of a WebKit session: a session that
// no WebDriver command reached for the timeout is closed (its cookies
// saved), and so is its driver.
func (m *Manager) watchWebKit(s *service, w *webkitSession) {
	idle := m.idleTimeout()
	tick := time.NewTicker(checkEvery(idle))
	defer tick.Stop()
	for {
		select {
		case <-w.exited:
			s.mu.Lock()
			mine := s.webkit == w && !w.closing.Load()
			if mine {
				s.webkit = nil
			}
			s.mu.Unlock()
			if mine {
				w.relay.close()
				w.log.Info("webkit driver exited")
				m.notifyClosed(s.name, ClosedExited)
			}
			return
		case now := <-tick.C:
			if !w.relay.idleFor(now, idle) {
				continue
			}
			s.op.Lock()
			s.mu.Lock()
			mine := s.webkit == w
			s.mu.Unlock()
			if mine && w.relay.idleFor(time.Now(), idle) {
				w.log.Info("closing the webkit session: no agent used it for the idle timeout", "idle_timeout", idle)
				ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
				if err := m.closeWebKit(ctx, s, w); err != nil {
					w.log.Error("closing an idle webkit session", "err", err)
				}
				cancel()
				s.op.Unlock()
				m.notifyClosed(s.name, ClosedIdle)
				return
			}
			s.op.Unlock()
			if !mine {
				return
			}
		}
	}
}
