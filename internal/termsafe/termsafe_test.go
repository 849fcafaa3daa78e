package termsafe_test

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pocketmolt/pocketmolt/internal/termsafe"
)

// attacks are what a hostile bot puts in a log line or an error to take over a terminal.
var attacks = []string{
	"\x1b]0;pwned\x07",     // OSC 0: set the window title
	"\x1b]2;pwned\x1b\\",   // OSC 2 ended by ST
	"\x1b[2J\x1b[H",        // CSI: clear the screen, cursor home
	"\x1b[1;31mred\x1b[0m", // SGR colours
	"\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\", // OSC 8 hyperlink
	"\x1b]52;c;cGF5bG9hZA==\x07",                             // OSC 52: write the clipboard
	"\x1bP+q544e\x1b\\",                                      // DCS request
	"\u009b2J",                                               // C1 CSI as UTF-8
	"\u009d0;title\u009c",                                    // C1 OSC … ST
	"\x9b2J",                                                 // C1 CSI as a raw byte (not UTF-8)
	"ok\rFAKE",                                               // lone CR: overwrite the line
	"abc\bdef\x7f",                                           // backspace and DEL
	"user\u202etxt.exe",                                      // RIGHT-TO-LEFT OVERRIDE
	"\u2066isolate\u2069 \u202aembed\u202c",
	"\x00\x05\x0e\x0f\x1a",
}

func TestString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text, ünïcödé ✓ 日本語", "plain text, ünïcödé ✓ 日本語"},
		{"tab\tand\nnewline", "tab\tand\nnewline"},
		{"crlf\r\nline", "crlf\r\nline"},
		{"\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		{"\x1b[2J\x1b[H", `\x1b[2J\x1b[H`},
		{"\u009b2J", `\u009b2J`},
		{"\x9b2J", `\x9b2J`},
		{"ok\rFAKE", `ok\rFAKE`},
		{"end\r", `end\r`},
		{"del\x7f", `del\x7f`},
		{"user\u202etxt.exe", `user\u202etxt.exe`},
		{"\u2066x\u2069", `\u2066x\u2069`},
		{"cut \xe2\x82", `cut \xe2\x82`},
		{`already \x1b escaped`, `already \x1b escaped`},
	}
	for _, tt := range tests {
		if got := termsafe.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"one line", "one line"},
		{"two\nlines\tand a tab", `two\nlines\tand a tab`},
		{"crlf\r\n", `crlf\r\n`},
		{"\x1b]0;x\x07", `\x1b]0;x\x07`},
	}
	for _, tt := range tests {
		if got := termsafe.Line(tt.in); got != tt.want {
			t.Errorf("Line(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if termsafe.IsPlain(tt.in) != (tt.in == tt.want) {
			t.Errorf("IsPlain(%q) = %v", tt.in, termsafe.IsPlain(tt.in))
		}
	}
}

// checkSafe fails if out holds anything a terminal could act on: every CR is followed by LF,
// the text is UTF-8, and no rune is unsafe. It is written without the package's own
// predicate, so the two check each other.
func checkSafe(t *testing.T, in, out string, line bool) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("escape of %q is not UTF-8: %q", in, out)
	}
	for i, r := range out {
		bad := r < 0x20 && r != '\n' && r != '\t' && r != '\r' ||
			r == 0x7f || r >= 0x80 && r <= 0x9f ||
			r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 ||
			r == '\r' && (line || !strings.HasPrefix(out[i:], "\r\n")) ||
			line && (r == '\n' || r == '\t')
		if bad {
			t.Fatalf("escape of %q holds %U at %d: %q", in, r, i, out)
		}
	}
}

func TestAttacksAreEscaped(t *testing.T) {
	for _, a := range attacks {
		checkSafe(t, a, termsafe.String(a), false)
		checkSafe(t, a, termsafe.Line(a), true)
		if termsafe.IsPlain(a) {
			t.Errorf("IsPlain(%q) = true", a)
		}
	}
}

// writeSplit writes in through a Writer in pieces cut at the given offsets.
func writeSplit(t *testing.T, in []byte, cuts []int) string {
	t.Helper()
	var b bytes.Buffer
	w := termsafe.NewWriter(&b)
	last := 0
	for _, c := range cuts {
		if c < last || c > len(in) {
			continue
		}
		if n, err := w.Write(in[last:c]); err != nil || n != c-last {
			t.Fatalf("Write = %d, %v", n, err)
		}
		last = c
	}
	if _, err := w.Write(in[last:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestWriterAcrossWrites(t *testing.T) {
	in := []byte("a\r\nb ✓ \u202e\x1b[2J\u009b end\r")
	want := termsafe.String(string(in))
	// Every way of cutting the input in two, and one byte at a time.
	for i := 0; i <= len(in); i++ {
		if got := writeSplit(t, in, []int{i}); got != want {
			t.Fatalf("cut at %d: %q, want %q", i, got, want)
		}
	}
	every := make([]int, len(in))
	for i := range every {
		every[i] = i
	}
	if got := writeSplit(t, in, every); got != want {
		t.Fatalf("byte by byte: %q, want %q", got, want)
	}

	t.Run("a line reaches the terminal as it arrives", func(t *testing.T) {
		var b bytes.Buffer
		w := termsafe.NewWriter(&b)
		w.Write([]byte("first line\n"))
		if b.String() != "first line\n" {
			t.Fatalf("after one line: %q", b.String())
		}
		w.Write([]byte("half a rune \xe2\x9c"))
		if b.String() != "first line\nhalf a rune " {
			t.Fatalf("held back: %q", b.String())
		}
		w.Write([]byte("\x93 and CR\r"))
		if b.String() != "first line\nhalf a rune ✓ and CR" {
			t.Fatalf("completed: %q", b.String())
		}
		w.Write([]byte("\n"))
		if b.String() != "first line\nhalf a rune ✓ and CR\r\n" {
			t.Fatalf("CR LF: %q", b.String())
		}
	})
}

func FuzzString(f *testing.F) {
	for _, a := range attacks {
		f.Add(a)
	}
	f.Add("plain ✓\r\n")
	f.Add("\xe2\x82")
	f.Add("\r")
	f.Fuzz(func(t *testing.T, in string) {
		s, l := termsafe.String(in), termsafe.Line(in)
		checkSafe(t, in, s, false)
		checkSafe(t, in, l, true)
		if termsafe.String(s) != s || termsafe.Line(l) != l {
			t.Fatalf("escaping %q twice changes it again", in)
		}
		if termsafe.IsPlain(in) != (l == in) {
			t.Fatalf("IsPlain(%q) = %v but Line gives %q", in, termsafe.IsPlain(in), l)
		}
	})
}

func FuzzWriter(f *testing.F) {
	for i, a := range attacks {
		f.Add([]byte(a), uint8(i), uint8(3*i+1))
	}
	f.Add([]byte("x\r\ny"), uint8(1), uint8(2))
	f.Add([]byte("✓✓"), uint8(1), uint8(4))
	f.Fuzz(func(t *testing.T, in []byte, a, b uint8) {
		cuts := []int{int(a) % (len(in) + 1), int(b) % (len(in) + 1)}
		if cuts[0] > cuts[1] {
			cuts[0], cuts[1] = cuts[1], cuts[0]
		}
		got := writeSplit(t, in, cuts)
		if want := termsafe.String(string(in)); got != want {
			t.Fatalf("Writer cut at %v: %q, String: %q", cuts, got, want)
		}
	})
}

// BenchmarkWriter measures escaping a log stream of ordinary lines with an escape sequence now
// and then, in 32 KiB reads as pmctl gets them.
func BenchmarkWriter(b *testing.B) {
	line := "2026-12-01T12:00:00Z [gateway] request handled in 12ms ✓ status=200\n"
	log := []byte(strings.Repeat(line, 400) + "\x1b[31mred\x1b[0m\n")
	chunk := 32 << 10
	w := termsafe.NewWriter(io.Discard)
	b.SetBytes(int64(len(log)))
	for b.Loop() {
		for i := 0; i < len(log); i += chunk {
			w.Write(log[i:min(i+chunk, len(log))])
		}
	}
	w.Flush()
}
