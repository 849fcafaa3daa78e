// Package termsafe makes text from hosts and bots safe to print on an operator's terminal and
// keeps it readable.
//
// What a terminal would act on instead of print becomes a visible escape: C0 control
// characters other than tab and newline (ESC starts every CSI and OSC sequence: clearing the
// screen, setting the window title, hyperlinks), DEL, the C1 controls U+0080–U+009F (some
// terminals take U+009B as CSI), bytes that are not UTF-8, and the bidirectional overrides
// and isolates U+202A–U+202E and U+2066–U+2069, which reorder what is shown. A CR that ends a
// line (CR LF) stays; a lone CR, which would let a line overwrite itself, is escaped.
//
// Escapes read like Go's: `\x1b` for a byte, `\u202e` for a character, `\r` for a lone CR.
// Backslashes are left alone, so the result is for reading, not for decoding: text that
// already holds `\x1b` as four characters prints the same as an escaped ESC, and harmlessly.
package termsafe

import (
	"io"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// IsUnsafe reports whether a terminal could act on r rather than print it: a C0 control other
// than tab and newline (CR included: String keeps it only before LF), DEL, a C1 control, or a
// bidirectional override or isolate.
func IsUnsafe(r rune) bool {
	switch {
	case r < 0x20:
		return r != '\n' && r != '\t'
	case r == 0x7f:
		return true
	case r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// String returns s with everything a terminal could act on escaped; tabs, newlines and CR LF
// line ends stay. Text with nothing to escape comes back unchanged.
func String(s string) string {
	if isClean(s, false) {
		return s
	}
	out, _ := appendSafe(nil, []byte(s), true, false)
	return string(out)
}

// Line is String for text that must stay on one line (an error message, a table cell):
// newlines, tabs and CRs are escaped too.
func Line(s string) string {
	if isClean(s, true) {
		return s
	}
	out, _ := appendSafe(nil, []byte(s), true, true)
	return string(out)
}

// IsPlain reports whether s is valid UTF-8 holding nothing Line would escape: the shape of a
// short, single-line field such as a hostname or a version.
func IsPlain(s string) bool { return isClean(s, true) }

// isClean reports whether String (or Line, when line is true) would return s unchanged.
func isClean(s string, line bool) bool {
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			switch {
			case b == '\r' && !line && i+1 < len(s) && s[i+1] == '\n':
				i += 2
				continue
			case IsUnsafe(rune(b)), line && (b == '\n' || b == '\t'):
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || IsUnsafe(r) {
			return false
		}
		i += size
	}
	return true
}

// appendSafe appends the escaped form of src to dst. Unless final, it stops before a trailing
// CR or an incomplete UTF-8 sequence, which the next bytes may complete, and returns how many
// bytes of src it consumed.
func appendSafe(dst, src []byte, final, line bool) ([]byte, int) {
	i := 0
	for i < len(src) {
		b := src[i]
		if b < utf8.RuneSelf {
			switch {
			case b == '\r':
				if i+1 == len(src) && !final {
					return dst, i // a CR LF may be split between two writes
				}
				if !line && i+1 < len(src) && src[i+1] == '\n' {
					dst = append(dst, '\r', '\n')
					i += 2
					continue
				}
				dst = append(dst, '\\', 'r')
			case line && b == '\n':
				dst = append(dst, '\\', 'n')
			case line && b == '\t':
				dst = append(dst, '\\', 't')
			case IsUnsafe(rune(b)):
				dst = appendByte(dst, b)
			default:
				dst = append(dst, b)
			}
			i++
			continue
		}
		if !final && !utf8.FullRune(src[i:]) {
			return dst, i // a rune split between two writes
		}
		r, size := utf8.DecodeRune(src[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = appendByte(dst, b)
		case IsUnsafe(r):
			dst = append(dst, '\\', 'u',
				hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
		default:
			dst = append(dst, src[i:i+size]...)
		}
		i += size
	}
	return dst, i
}

func appendByte(dst []byte, b byte) []byte {
	return append(dst, '\\', 'x', hexDigits[b>>4], hexDigits[b&0xf])
}

// Writer escapes what is written through it as String does, for a stream such as a followed
// log: a rune or a CR LF split between two writes is handled as if it came in one. It holds
// back at most the three bytes of an incomplete rune or a final CR until the next Write or
// Flush, so each line reaches the terminal as it arrives. A Writer is not safe for concurrent
// use.
type Writer struct {
	w       io.Writer
	pending []byte // a trailing CR or an incomplete UTF-8 sequence
	buf     []byte
}

// NewWriter returns a Writer that writes the escaped text to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write escapes p and writes it to the underlying writer. It reports len(p) on success; an
// error is the underlying writer's.
func (s *Writer) Write(p []byte) (int, error) {
	src := p
	if len(s.pending) > 0 {
		src = append(s.pending, p...)
	}
	out, n := appendSafe(s.buf[:0], src, false, false)
	s.pending = append(s.pending[:0:0], src[n:]...)
	s.buf = out[:0]
	if len(out) > 0 {
		if _, err := s.w.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush writes what is held back, escaped as the end of the text: a lone CR or the bytes of
// an incomplete rune. Call it when the stream ends.
func (s *Writer) Flush() error {
	if len(s.pending) == 0 {
		return nil
	}
	out, _ := appendSafe(s.buf[:0], s.pending, true, false)
	s.pending = s.pending[:0]
	s.buf = out[:0]
	_, err := s.w.Write(out)
	return err
}
