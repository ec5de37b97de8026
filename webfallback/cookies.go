package webfallback

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/quotabar/quotabar/internal/atomicfile"
)

// wdCookie is a cookie as WebDriver reads and writes it.
type wdCookie struct {
	Name     string   `json:"name"`
	Value    string   `json:"value"`
	Path     string   `json:"path,omitempty"`
	Domain   string   `json:"domain,omitempty"`
	Secure   bool     `json:"secure"`
	HTTPOnly bool     `json:"httpOnly"`
	Expiry   *float64 `json:"expiry,omitempty"` // seconds since the epoch; none for a session cookie
	SameSite string   `json:"sameSite,omitempty"`
}

type cookieKey struct{ name, domain, path string }

func (c wdCookie) key() cookieKey { return cookieKey{c.Name, c.Domain, c.Path} }

func (c wdCookie) expired(now time.Time) bool {
	return c.Expiry != nil && *c.Expiry < float64(now.Unix())
}

// loadCookies reads a cookie file; a missing file is no cookies.
func loadCookies(path string) ([]wdCookie, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cs []wdCookie
	if err := json.Unmarshal(data, &cs); err != nil {
		return nil, fmt.Errorf("cookie file %s: %w", path, err)
	}
	return cs, nil
}

// mergeCookies returns the cookies to keep after a session: all the
// session's cookies, plus the saved ones the session could not have seen
// because they could not be added to it (another domain). A saved cookie
// that was added and is now missing was deleted by the site (a sign-out), so
// it stays deleted. Expired cookies are dropped.
func mergeCookies(saved []wdCookie, restored map[cookieKey]bool, session []wdCookie, now time.Time) []wdCookie {
	out := make([]wdCookie, 0, len(saved)+len(session))
	seen := map[cookieKey]bool{}
	for _, c := range session {
		if !c.expired(now) && !seen[c.key()] {
			seen[c.key()] = true
			out = append(out, c)
		}
	}
	for _, c := range saved {
		if !restored[c.key()] && !seen[c.key()] && !c.expired(now) {
			seen[c.key()] = true
			out = append(out, c)
		}
	}
	return out
}

// saveCookies writes cs to path, readable only by the user, atomically and
// durably: a crash leaves the old file or the new one, never half of one.
func saveCookies(path string, cs []wdCookie) error {
	data, err := json.MarshalIndent(cs, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o600)
}
