package limiter

import (
	"strconv"
	"strings"
)

// Structured Field Values (RFC 8941), as much as the IETF rate-limit fields
// need: Lists and Dictionaries of Items with Parameters. Inner Lists are
// parsed but carry no values. A field that fails to parse is ignored as a
// whole, as RFC 8941 requires.

type sfToken string

type sfParam struct {
	key   string
	value any // int64, float64, string, sfToken, []byte, bool or sfDate
}

type sfDate int64

type sfMember struct {
	key    string // dictionary key; "" in a list
	value  any    // nil for an inner list
	params []sfParam
}

// name returns the member's value when it is a String or Token, as policy
// names are (a String from draft 09 on, a Token in draft 08).
func (m sfMember) name() (string, bool) {
	switch v := m.value.(type) {
	case string:
		return v, true
	case sfToken:
		return string(v), true
	}
	return "", false
}

func (m sfMember) intValue() (int64, bool) {
	n, ok := m.value.(int64)
	return n, ok && n >= 0 && n <= maxCount
}

func (m sfMember) param(key string) (any, bool) {
	for i := len(m.params) - 1; i >= 0; i-- { // the last of duplicates wins
		if m.params[i].key == key {
			return m.params[i].value, true
		}
	}
	return nil, false
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

type sfDict []sfMember

// count returns the value of member key when it is an Integer in
// [0, maxCount].
func (d sfDict) count(key string) (int64, bool) {
	for i := len(d) - 1; i >= 0; i-- {
		if d[i].key == key {
			return d[i].intValue()
		}
	}
	return 0, false
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) eof() bool { return p.i >= len(p.s) }

func (p *sfParser) skipSP() {
	for !p.eof() && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for !p.eof() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// parseSFList parses v as a List. An empty or absent field is no list.
func parseSFList(v string) ([]sfMember, bool) {
	p := &sfParser{s: strings.Trim(v, " \t")}
	if p.eof() {
		return nil, false
	}
	var list []sfMember
	for !p.eof() {
		m, ok := p.itemOrInnerList()
		if !ok {
			return nil, false
		}
		list = append(list, m)
		if !p.endOfMember() {
			return nil, false
		}
	}
	return list, true
}

// parseSFDict parses v as a Dictionary.
func parseSFDict(v string) (sfDict, bool) {
	p := &sfParser{s: strings.Trim(v, " \t")}
	if p.eof() {
		return nil, false
	}
	var dict sfDict
	for !p.eof() {
		key, ok := p.key()
		if !ok {
			return nil, false
		}
		var m sfMember
		if !p.eof() && p.s[p.i] == '=' {
			p.i++
			if m, ok = p.itemOrInnerList(); !ok {
				return nil, false
			}
		} else {
			m.value = true
			if m.params, ok = p.params(); !ok {
				return nil, false
			}
		}
		m.key = key
		dict = append(dict, m)
		if !p.endOfMember() {
			return nil, false
		}
	}
	return dict, true
}

// endOfMember consumes the separator after a list or dictionary member and
// reports whether the field may go on (or has ended cleanly).
func (p *sfParser) endOfMember() bool {
	p.skipOWS()
	if p.eof() {
		return true
	}
	if p.s[p.i] != ',' {
		return false
	}
	p.i++
	p.skipOWS()
	return !p.eof() // a trailing comma is an error
}

func (p *sfParser) itemOrInnerList() (sfMember, bool) {
	if !p.eof() && p.s[p.i] == '(' {
		p.i++
		for {
			p.skipSP()
			if p.eof() {
				return sfMember{}, false
			}
			if p.s[p.i] == ')' {
				p.i++
				params, ok := p.params()
				return sfMember{params: params}, ok
			}
			if _, ok := p.item(); !ok {
				return sfMember{}, false
			}
			if !p.eof() && p.s[p.i] != ' ' && p.s[p.i] != ')' {
				return sfMember{}, false
			}
		}
	}
	return p.item()
}

func (p *sfParser) item() (sfMember, bool) {
	v, ok := p.bareItem()
	if !ok {
		return sfMember{}, false
	}
	params, ok := p.params()
	return sfMember{value: v, params: params}, ok
}

func (p *sfParser) params() ([]sfParam, bool) {
	var params []sfParam
	for !p.eof() && p.s[p.i] == ';' {
		p.i++
		p.skipSP()
		key, ok := p.key()
		if !ok {
			return nil, false
		}
		var v any = true
		if !p.eof() && p.s[p.i] == '=' {
			p.i++
			if v, ok = p.bareItem(); !ok {
				return nil, false
			}
		}
		params = append(params, sfParam{key, v})
	}
	return params, true
}

func (p *sfParser) key() (string, bool) {
	start := p.i
	if p.eof() || !(isLCAlpha(p.s[p.i]) || p.s[p.i] == '*') {
		return "", false
	}
	for !p.eof() {
		c := p.s[p.i]
		if !(isLCAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*') {
			break
		}
		p.i++
	}
	return p.s[start:p.i], true
}

func (p *sfParser) bareItem() (any, bool) {
	if p.eof() {
		return nil, false
	}
	switch c := p.s[p.i]; {
	case c == '-' || isDigit(c):
		return p.number()
	case c == '"':
		return p.str()
	case c == '*' || isAlpha(c):
		return p.token(), true
	case c == ':':
		return p.bytes()
	case c == '?':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '0' || p.s[p.i+1] == '1') {
			p.i += 2
			return p.s[p.i-1] == '1', true
		}
		return nil, false
	case c == '@':
		p.i++
		n, ok := p.number()
		if i, isInt := n.(int64); ok && isInt {
			return sfDate(i), true
		}
		return nil, false
	}
	return nil, false
}

// number parses an Integer (at most 15 digits) or a Decimal (at most 12
// integer and 3 fraction digits).
func (p *sfParser) number() (any, bool) {
	start := p.i
	if !p.eof() && p.s[p.i] == '-' {
		p.i++
	}
	digitsStart, dot := p.i, -1
	for !p.eof() {
		c := p.s[p.i]
		if c == '.' && dot < 0 {
			dot = p.i
		} else if !isDigit(c) {
			break
		}
		p.i++
	}
	text := p.s[start:p.i]
	if dot < 0 {
		if p.i == digitsStart || p.i-digitsStart > 15 {
			return nil, false
		}
		n, err := strconv.ParseInt(text, 10, 64)
		return n, err == nil
	}
	intDigits, fracDigits := dot-digitsStart, p.i-dot-1
	if intDigits < 1 || intDigits > 12 || fracDigits < 1 || fracDigits > 3 {
		return nil, false
	}
	f, err := strconv.ParseFloat(text, 64)
	return f, err == nil
}

func (p *sfParser) str() (any, bool) {
	p.i++ // opening quote
	var b strings.Builder
	for !p.eof() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if p.eof() || (p.s[p.i] != '"' && p.s[p.i] != '\\') {
				return nil, false
			}
			b.WriteByte(p.s[p.i])
			p.i++
		case c == '"':
			return b.String(), true
		case c < 0x20 || c > 0x7e:
			return nil, false
		default:
			b.WriteByte(c)
		}
	}
	return nil, false // no closing quote
}

func (p *sfParser) token() sfToken {
	start := p.i
	p.i++
	for !p.eof() && (isTChar(p.s[p.i]) || p.s[p.i] == ':' || p.s[p.i] == '/') {
		p.i++
	}
	return sfToken(p.s[start:p.i])
}

func (p *sfParser) bytes() (any, bool) {
	p.i++ // opening colon
	start := p.i
	for !p.eof() && p.s[p.i] != ':' {
		c := p.s[p.i]
		if !(isAlpha(c) || isDigit(c) || c == '+' || c == '/' || c == '=') {
			return nil, false
		}
		p.i++
	}
	if p.eof() {
		return nil, false
	}
	p.i++ // closing colon
	return []byte(p.s[start : p.i-1]), true
}
