package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"
)

// handleEvents streams the status as server-sent events: one at connect,
// then one whenever the status differs from the last one sent, at most one
// per eventInterval.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	changed, stop := s.Changed()
	defer stop()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)

	var last []byte
	var lastSent time.Time
	// send writes the status if it changed; false means the client is gone.
	send := func() bool {
		data, err := json.Marshal(s.Status())
		if err != nil {
			panic("server: marshal status: " + err.Error())
		}
		if bytes.Equal(data, last) {
			return true
		}
		// A client that stops reading must not hold this goroutine forever.
		rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(append(append([]byte("event: status\ndata: "), data...), '\n', '\n')); err != nil {
			return false
		}
		if err := rc.Flush(); err != nil {
			return false
		}
		last, lastSent = data, time.Now()
		return true
	}
	if !send() {
		return
	}

	recheck := time.NewTicker(eventRecheck)
	defer recheck.Stop()
	hold := time.NewTimer(0)
	<-hold.C
	pending, holding := false, false
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		case <-changed:
			pending = true
		case <-recheck.C:
			pending = true
		case <-hold.C:
			holding = false
		}
		if !pending || holding {
			continue
		}
		if wait := eventInterval - time.Since(lastSent); wait > 0 {
			hold.Reset(wait)
			holding = true
			continue
		}
		pending = false
		if !send() {
			return
		}
	}
}
