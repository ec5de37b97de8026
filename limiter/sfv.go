package limiter

import (
	"github.com/dunglas/httpsfv"
)

// This file adapts github.com/dunglas/httpsfv, a parser of Structured
// Field Values (RFC 9651, formerly RFC 8941), to what the IETF rate-limit
// fields need: Lists and Dictionaries of Items with Parameters. A field
// that fails to parse is ignored as a whole, as the RFC requires.

// maxSFField bounds the length of a structured field parsed at all. The
// IETF fields of real providers are a few hundred bytes; a field of
// megabytes from a broken upstream would otherwise be parsed in full (and
// every member allocated) before maxIETFMembers cuts it down. A field of a
// few thousand members is still read (its first members), as before.
const maxSFField = 256 << 10

// sfMember is a List member, or a Dictionary member's value: an Item's bare
// value (nil for an Inner List) and its parameters.
type sfMember struct {
	value  any // int64, float64, string, httpsfv.Token, []byte, bool, time.Time, httpsfv.DisplayString
	params *httpsfv.Params
}

func memberOf(m httpsfv.Member) sfMember {
	switch v := m.(type) {
	case httpsfv.Item:
		return sfMember{value: v.Value, params: v.Params}
	case httpsfv.InnerList:
		return sfMember{params: v.Params}
	}
	return sfMember{}
}

// name returns the member's value when it is a String or Token, as policy
// names are (a String from draft 09 on, a Token in draft 08).
func (m sfMember) name() (string, bool) {
	switch v := m.value.(type) {
	case string:
		return v, true
	case httpsfv.Token:
		return string(v), true
	}
	return "", false
}

func (m sfMember) intValue() (int64, bool) {
	n, ok := m.value.(int64)
	return n, ok && n >= 0 && n <= maxCount
}

// param returns parameter key; of duplicates the last one wins, as the
// RFC says and httpsfv does.
func (m sfMember) param(key string) (any, bool) {
	if m.params == nil {
		return nil, false
	}
	return m.params.Get(key)
}

// count returns parameter key when it is an Integer in [0, maxCount].
func (m sfMember) count(key string) (int64, bool) {
	v, ok := m.param(key)
	if !ok {
		return 0, false
	}
	n, ok := v.(int64)
	return n, ok && n >= 0 && n <= maxCount
}

// sfDict is a parsed Dictionary.
type sfDict struct{ d *httpsfv.Dictionary }

// len is the number of members.
func (d sfDict) len() int { return len(d.d.Names()) }

// count returns the value of member key when it is an Integer in
// [0, maxCount].
func (d sfDict) count(key string) (int64, bool) {
	m, ok := d.d.Get(key)
	if !ok {
		return 0, false
	}
	return memberOf(m).intValue()
}

// parseSFList parses v as a List. An empty, absent or oversized field is no
// list.
func parseSFList(v string) ([]sfMember, bool) {
	if !sfSized(v) {
		return nil, false
	}
	list, err := httpsfv.UnmarshalList([]string{v})
	if err != nil || len(list) == 0 {
		return nil, false
	}
	out := make([]sfMember, len(list))
	for i, m := range list {
		out[i] = memberOf(m)
	}
	return out, true
}

// parseSFDict parses v as a Dictionary.
func parseSFDict(v string) (sfDict, bool) {
	if !sfSized(v) {
		return sfDict{}, false
	}
	d, err := httpsfv.UnmarshalDictionary([]string{v})
	if err != nil || len(d.Names()) == 0 {
		return sfDict{}, false
	}
	return sfDict{d}, true
}

func sfSized(v string) bool { return v != "" && len(v) <= maxSFField }
