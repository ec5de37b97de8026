package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// budget bounds the bytes of request bodies the proxy holds at once. Each
// body is held for its whole call (to be sent again after a 429), so the
// bound is on what is held, not on what is read per second.
type budget struct {
	max int64

	mu   sync.Mutex
	used int64
}

// take reserves n bytes, or reports false when that would pass the bound.
func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

func (b *budget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// errBusy is a body that would pass the proxy's memory bound.
var errBusy = errors.New("proxy: request bodies held would pass the bound")

// readChunk is how much of a body of unknown length is reserved at a time.
const readChunk = 64 << 10

// readBody reads the request body within the proxy's memory bound and the
// body timeout, and answers the caller itself when it cannot (413, 503, 408);
// the returned release gives the body's bytes back to the bound.
func (p *Proxy) readBody(w http.ResponseWriter, r *http.Request) (body []byte, release func(), err error) {
	if r.ContentLength > MaxBody {
		writeTooLarge(w)
		return nil, nil, errors.New("too large")
	}
	// A caller that sends its body slowly does not hold a slot of the
	// bound (and a goroutine) for longer than the timeout.
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(p.bodyTimeout)); err == nil {
		defer rc.SetReadDeadline(time.Time{})
	}
	var held int64
	release = func() { p.buffered.give(held) }
	fail := func(err error) ([]byte, func(), error) {
		release()
		return nil, nil, err
	}
	if r.ContentLength >= 0 {
		// Known length: reserved and allocated once, exactly.
		if !p.buffered.take(r.ContentLength) {
			writeBusy(w)
			return fail(errBusy)
		}
		held = r.ContentLength
		body = make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return fail(p.bodyError(w, err))
		}
		return body, release, nil
	}
	// Unknown length (chunked): reserved as the buffer grows.
	src := http.MaxBytesReader(w, r.Body, MaxBody)
	if !p.buffered.take(readChunk) {
		writeBusy(w)
		return fail(errBusy)
	}
	held = readChunk
	body = make([]byte, 0, readChunk)
	for {
		if len(body) == cap(body) {
			grow := int64(max(min(cap(body), MaxBody+1-cap(body)), 1))
			if !p.buffered.take(grow) {
				writeBusy(w)
				return fail(errBusy)
			}
			held += grow
			body = append(make([]byte, 0, int64(cap(body))+grow), body...)
		}
		n, err := src.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if err == io.EOF {
			return body, release, nil
		}
		if err != nil {
			return fail(p.bodyError(w, err))
		}
	}
}

// bodyError answers a body that could not be read.
func (p *Proxy) bodyError(w http.ResponseWriter, err error) error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeTooLarge(w)
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestTimeout, "body_timeout",
			fmt.Sprintf("quotabar proxy: the request body did not arrive within %s", p.bodyTimeout), 0)
	}
	// Otherwise the caller went away while sending: nobody to answer.
	return err
}

func writeTooLarge(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusRequestEntityTooLarge, "too_large",
		fmt.Sprintf("quotabar proxy: request body over %d MiB", MaxBody>>20), 0)
}

func writeBusy(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusServiceUnavailable, "busy",
		"quotabar proxy: too many large request bodies are held at once; retry shortly", busyRetryAfter)
}
