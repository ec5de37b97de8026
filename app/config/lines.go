package config

import (
	"bytes"
	"fmt"
	"slices"
	"sort"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyLines finds the line of every key in a TOML document, and of every
// list element, so that an error names the line of the bad value, not
// just its key: BurntSushi/toml, which decodes the file, keeps positions
// private. go-toml's parser gives every node's place in the file. Keys are
// written as keyPath does, list elements as key[i], and every table that
// holds a key is recorded at the line where it first appears. On a
// document that does not parse, the lines before the error are found.
func keyLines(data []byte) map[string]int {
	k := &keyLiner{data: data, out: map[string]int{}}
	for i, c := range data {
		if c == '\n' {
			k.newlines = append(k.newlines, i)
		}
	}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keyParts(e.Key())
			k.recordPrefixes(table, k.lineOf(e, 0))
		case unstable.KeyValue:
			full := append(slices.Clone(table), keyParts(e.Key())...)
			line := k.lineOf(e, 0)
			k.recordPrefixes(full, line)
			k.value(keyPath(full...), e.Value(), line)
		}
	}
	return k.out
}

type keyLiner struct {
	data     []byte
	newlines []int // offsets of '\n', for finding a line by offset in log time
	out      map[string]int
}

func keyParts(it unstable.Iterator) []string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

// lineOf is the line where node starts. Lists and tables carry no range of
// their own, so their first part with one stands for them; fallback is for
// an empty one.
func (k *keyLiner) lineOf(n *unstable.Node, fallback int) int {
	if n.Raw.Length > 0 {
		off := int(n.Raw.Offset)
		return sort.SearchInts(k.newlines, off) + 1
	}
	// A key-value's first child is its value; its key comes after.
	if n.Kind == unstable.KeyValue {
		it := n.Key()
		if it.Next() {
			return k.lineOf(it.Node(), fallback)
		}
	}
	if n.Kind == unstable.Table || n.Kind == unstable.ArrayTable {
		it := n.Key()
		if it.Next() {
			return k.lineOf(it.Node(), fallback)
		}
	}
	if c := n.Child(); c != nil {
		return k.lineOf(c, fallback)
	}
	return fallback
}

func (k *keyLiner) record(path string, line int) {
	if _, ok := k.out[path]; !ok {
		k.out[path] = line
	}
}

func (k *keyLiner) recordPrefixes(key []string, line int) {
	for i := 1; i <= len(key); i++ {
		k.record(keyPath(key[:i]...), line)
	}
}

// value records the elements of lists and the keys of inline tables under
// path; line is where the value's key is.
func (k *keyLiner) value(path string, v *unstable.Node, line int) {
	switch v.Kind {
	case unstable.Array:
		i := 0
		for it := v.Children(); it.Next(); i++ {
			elem := fmt.Sprintf("%s[%d]", path, i)
			el := k.lineOf(it.Node(), line)
			k.record(elem, el)
			k.value(elem, it.Node(), el)
		}
	case unstable.InlineTable:
		for it := v.Children(); it.Next(); {
			kv := it.Node()
			kp := path + "." + keyPath(keyParts(kv.Key())...)
			kl := k.lineOf(kv, line)
			// Every part of a dotted key inside the table.
			parts := keyParts(kv.Key())
			for j := 1; j <= len(parts); j++ {
				k.record(path+"."+keyPath(parts[:j]...), kl)
			}
			k.value(kp, kv.Value(), kl)
		}
	}
}

// checkNesting reports whether lists and inline tables nest at most max
// deep in data, and if not, the line where they go deeper. It reads only
// what it must to know what is inside a string or a comment, so it is
// linear and never recurses; it runs before the TOML parser, whose
// recursion it bounds. Table headers ([a], [[a]]) count while they are
// open, which only makes it stricter by two.
func checkNesting(data []byte, max int) (line int, ok bool) {
	depth, line := 0, 1
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\n':
			line++
		case '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
			i-- // let the loop see the newline
		case '"', '\'':
			i = skipString(data, i, &line)
		case '[', '{':
			depth++
			if depth > max {
				return line, false
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return 0, true
}

// skipString passes the string that starts at data[i] (any of TOML's four
// kinds), counting its line breaks, and returns the index of its last
// byte. An unterminated one-line string ends before its line break.
func skipString(data []byte, i int, line *int) int {
	q := data[i]
	multi := bytes.HasPrefix(data[i:], []byte{q, q, q})
	if multi {
		i += 3
	} else {
		i++
	}
	for ; i < len(data); i++ {
		switch c := data[i]; {
		case c == '\n':
			if !multi {
				return i - 1 // the line break is the caller's to count
			}
			*line++
		case c == '\\' && q == '"':
			if i+1 < len(data) && data[i+1] == '\n' {
				*line++
			}
			i++
		case c == q && !multi:
			return i
		case c == q && bytes.HasPrefix(data[i:], []byte{q, q, q}):
			i += 2
			// Up to two more quotes right after belong to the string.
			for i+1 < len(data) && data[i+1] == q {
				i++
			}
			return i
		}
	}
	return len(data) - 1
}
