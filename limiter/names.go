package limiter

import (
	"errors"
	"fmt"
)

// This file holds the naming rule shared by agents and services.

// MaxNameLen is the longest agent or service name.
const MaxNameLen = 64

const nameRule = "names are 1 to 64 characters of A-Z a-z 0-9 . _ -"

// ValidName reports whether s may name an agent or a service: 1 to 64
// characters of A-Z a-z 0-9 . _ -. The error quotes the name and the rule;
// the caller adds which field it was.
func ValidName(s string) error {
	if s == "" {
		return errors.New("name is empty; " + nameRule)
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("name %.20q... is %d bytes long; %s", s, len(s), nameRule)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) || c == '.' || c == '_' || c == '-' {
			continue
		}
		return fmt.Errorf("name %q has %q at byte %d; %s", s, firstRune(s[i:]), i, nameRule)
	}
	return nil
}

func firstRune(s string) string {
	for _, r := range s {
		return string(r)
	}
	return ""
}
