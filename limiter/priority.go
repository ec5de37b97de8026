package limiter

import (
	"fmt"
	"strconv"
	"strings"
)

// This file parses and prints priorities.

var priorityNames = [...]string{Low: "low", Normal: "normal", High: "high"}

// ParsePriority reads "high", "normal" or "low" in any case; "" is
// PriorityUnset (use the agent's configured priority).
func ParsePriority(s string) (Priority, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return PriorityUnset, nil
	}
	for p, name := range priorityNames {
		if name != "" && t == name {
			return Priority(p), nil
		}
	}
	return PriorityUnset, fmt.Errorf("unknown priority %q; allowed: high, normal, low", s)
}

// String returns "high", "normal" or "low"; "unset" for PriorityUnset.
func (p Priority) String() string {
	if p == PriorityUnset {
		return "unset"
	}
	if p > 0 && int(p) < len(priorityNames) {
		return priorityNames[p]
	}
	return "Priority(" + strconv.Itoa(int(p)) + ")"
}

// MarshalText encodes p as "high", "normal" or "low", and PriorityUnset as
// "", which UnmarshalText reads back.
func (p Priority) MarshalText() ([]byte, error) {
	if p == PriorityUnset {
		return []byte{}, nil
	}
	if p < 0 || int(p) >= len(priorityNames) {
		return nil, fmt.Errorf("priority %d is out of range; allowed: high, normal, low", int(p))
	}
	return []byte(priorityNames[p]), nil
}

// UnmarshalText reads a priority as ParsePriority does.
func (p *Priority) UnmarshalText(text []byte) error {
	v, err := ParsePriority(string(text))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
