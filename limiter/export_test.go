package limiter

import (
	"math/rand/v2"
	"time"
)

// Pending is a request submitted without blocking, for deterministic tests
// that drive the fake clock from one goroutine.
type Pending struct {
	w   *waiter
	r   result
	got bool
}

// Poll returns the answer once there is one.
func (p *Pending) Poll() (Lease, error, bool) {
	if !p.got {
		select {
		case p.r = <-p.w.done:
			p.got = true
		default:
			return Lease{}, nil, false
		}
	}
	return p.r.lease, p.r.err, true
}

// Submit queues req like Acquire but returns at once. A request answered at
// once (refused, or an error) returns its error.
func (l *Limiter) Submit(req Request) (*Pending, error) {
	w, err := l.submit(req)
	if err != nil {
		return nil, err
	}
	return &Pending{w: w}, nil
}

// Seed makes the limiter's jitter and lease IDs repeatable.
func (l *Limiter) Seed(seed uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// SetParser replaces ParseHeaders, so observations can be injected.
func (l *Limiter) SetParser(f func(dialect string, h map[string]string, now time.Time) Observation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.parse = f
}
