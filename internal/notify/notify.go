// Package notify tells subscribers that something may have changed, without
// ever blocking the one who says so: a poke that finds one already pending
// coalesces into it, and the subscriber looks at the current state when it
// wakes.
package notify

import "sync"

// Hub is a set of subscribers. The zero Hub is ready to use, and a Hub is
// safe for concurrent use.
type Hub struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

// Subscribe returns a channel that receives after each Notify (coalesced
// while a value is pending) and a function that ends the subscription.
func (h *Hub) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = make(map[chan struct{}]struct{})
	}
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}
}

// Notify pokes every subscriber without waiting for any.
func (h *Hub) Notify() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
