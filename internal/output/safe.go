package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/pocketmolt/pocketmolt/internal/termsafe"
)

// SafeJSON encodes v as indented JSON with a trailing newline, with every character a
// terminal could act on written as a \u escape. encoding/json already escapes C0 controls
// (and replaces invalid UTF-8 with U+FFFD); it writes DEL, the C1 controls and the bidi
// overrides as they are. Those can only stand inside strings, where \uXXXX is the same
// character, so the result is valid JSON with the same value.
func SafeJSON(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode json: %w", err)
	}
	return append(escapeRunes(b), '\n'), nil
}

// SafeYAML encodes v as YAML with a two-space indent and every character a terminal could act
// on escaped.
//
// yaml.v3 writes every C0 control, DEL and C1 control only in double-quoted scalars, escaped,
// and invalid UTF-8 as !!binary; but it writes the bidi overrides and isolates as they are, in
// any style. When some scalar holds one, the value is encoded again with those scalars forced
// to the double-quoted style, where \uXXXX means the character itself. yaml.v3 cannot turn
// every value it writes into a node tree (it reads its own output back, and some of that
// output does not parse); then the controls are escaped where they stand, which keeps the
// output safe though such a scalar reads back with the escape's text.
func SafeYAML(v any) ([]byte, error) {
	b, err := encodeYAML(v)
	if err != nil {
		return nil, err
	}
	if !bytes.ContainsFunc(b, termsafe.IsUnsafe) {
		return b, nil
	}
	var doc yaml.Node
	if doc.Encode(v) == nil {
		quoteUnsafe(&doc)
		if nb, err := encodeYAML(&doc); err == nil {
			return escapeRunes(nb), nil
		}
	}
	return escapeRunes(b), nil
}

func encodeYAML(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode yaml: %w", err)
	}
	return b.Bytes(), nil
}

// quoteUnsafe gives every scalar under n that holds an unsafe character (a CR too, which a
// block scalar would carry as it is) the double-quoted style.
func quoteUnsafe(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && strings.ContainsFunc(n.Value, termsafe.IsUnsafe) {
		n.Style = yaml.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		quoteUnsafe(c)
	}
}

// escapeRunes rewrites every unsafe rune in b as \uXXXX. Callers make sure such runes stand
// only where that escape means the rune itself.
func escapeRunes(b []byte) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError && termsafe.IsUnsafe(r) {
			if out == nil {
				out = make([]byte, 0, len(b)+16)
			}
			out = append(out, b[last:i]...)
			out = fmt.Appendf(out, `\u%04x`, r)
			last = i + size
		}
		i += size
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}
