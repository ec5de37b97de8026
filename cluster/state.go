package cluster

import (
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"time"

	"github.com/quotabar/quotabar/internal/atomicfile"
)

// Option configures New.
type Option func(*Member)

// WithStateFile keeps the member's last known standing in path (the
// daemon's state dir): the epoch and, per shared service, the last share
// and member count. A daemon that starts while Redis does not answer then
// uses its last known share ("cluster: offline, using 1/3 (last known)")
// instead of granting nothing, and when Redis answers it reports the epoch
// it knew, so that a Redis that lost its data meanwhile freezes the shares
// until everyone has re-registered.
func WithStateFile(path string) Option { return func(m *Member) { m.statePath = path } }

// savedState is the state file. It holds no credential.
type savedState struct {
	Epoch    string                  `json:"epoch"`
	Services map[string]savedService `json:"services"`
}

type savedService struct {
	Share   float64 `json:"share"`
	Members int     `json:"members"`
}

// stateEvery bounds how often the state file is written.
const stateEvery = time.Second

// loadState reads the state file; a missing or unreadable one is no state
// (the daemon then grants nothing while Redis is away, as on a first start).
func (m *Member) loadState() {
	if m.statePath == "" {
		return
	}
	b, err := os.ReadFile(m.statePath)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("cluster: reading the last known shares", "err", err)
		}
		return
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		m.log.Warn("cluster: the last known shares are unreadable; ignoring them", "file", m.statePath, "err", err)
		return
	}
	if len(st.Epoch) <= 128 {
		m.epoch = st.Epoch
	}
	for name, s := range st.Services {
		if sv := m.svc[name]; sv != nil && !math.IsNaN(s.Share) && s.Share > 0 && s.Share <= 1 {
			sv.saved = s.Share
		}
	}
}

// saveState writes the state file when something changed, at most once per
// stateEvery (and at once for a new epoch).
func (m *Member) saveState(force bool) {
	if m.statePath == "" {
		return
	}
	m.mu.Lock()
	st := savedState{Epoch: m.epoch, Services: map[string]savedService{}}
	for name, s := range m.svc {
		if s.st.State == Online {
			st.Services[name] = savedService{Share: s.st.Share, Members: s.st.Members}
		} else if s.saved > 0 {
			st.Services[name] = savedService{Share: s.saved}
		}
	}
	b, _ := json.Marshal(st)
	due := force || time.Since(m.savedAt) >= stateEvery
	same := string(b) == string(m.savedJSON)
	if !due || same {
		m.mu.Unlock()
		return
	}
	m.savedAt, m.savedJSON = time.Now(), b
	m.mu.Unlock()
	if err := atomicfile.WriteFile(m.statePath, b, 0o600); err != nil {
		m.log.Warn("cluster: saving the last known shares", "err", err)
	}
}
