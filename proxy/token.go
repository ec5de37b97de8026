package proxy

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/quotabar/quotabar/internal/atomicfile"
)

// TokenFile is the name of the file in the state directory that keeps the
// proxy's secret token.
const TokenFile = "proxy-token"

// LoadOrCreateToken returns the secret token kept in dir/TokenFile, creating
// the file (mode 0600) with a new random token when it does not exist. A
// token file that other users could read is no longer secret, so it is
// replaced by a new one.
func LoadOrCreateToken(dir string) (string, error) {
	path := filepath.Join(dir, TokenFile)
	if fi, err := os.Stat(path); err == nil {
		if fi.Mode().Perm()&0o077 == 0 {
			b, err := os.ReadFile(path)
			if err != nil {
				return "", fmt.Errorf("read proxy token: %w", err)
			}
			if tok := strings.TrimSpace(string(b)); validToken(tok) {
				return tok, nil
			}
		}
		// Unreadable by us, readable by others, or damaged: start again.
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("proxy token: %w", err)
	}
	tok, err := NewToken()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("proxy token: create state directory: %w", err)
	}
	// Written beside and renamed, durably: a reader never sees half a
	// token, the file is 0600 from its first byte, and a crash cannot lose
	// the token (and with it every agent's base URL).
	if err := atomicfile.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write proxy token: %w", err)
	}
	return tok, nil
}

// NewToken returns a new random token: 128 bits, hex encoded, safe in a
// URL path.
func NewToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("proxy token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func validToken(s string) bool {
	if len(s) < 16 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// tokenEqual compares in constant time, so that the time of a 403 tells a
// guesser nothing about how much of the token was right.
func tokenEqual(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
