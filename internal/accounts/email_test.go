package accounts

import (
	"encoding/base64"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalizeEmail(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ada@example.com", "ada@example.com"},
		{"  Ada.Lovelace+pm@Example.COM\t", "ada.lovelace+pm@example.com"},
		{"o'brien@example.ie", "o'brien@example.ie"},
		{"ada@localhost", "ada@localhost"},
		{"", ""},
		{"ada", ""},
		{"@example.com", ""},
		{"ada@", ""},
		{"Ada <ada@example.com>", ""},
		{"<ada@example.com>", ""},
		{"ada@example.com, bob@example.com", ""},
		{"ada @example.com", ""},
		{"ada@exa\nmple.com", ""},
		{"ada@example.com (Ada)", ""},
		{`"ada lovelace"@example.com`, ""},
		{strings.Repeat("a", 250) + "@x.io", ""},
	} {
		got, err := NormalizeEmail(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"ada@example.com", " Ada@Example.COM ", "Ada <a@b.c>", "a@b, c@d", "@", "a@", `"x y"@z`, "a@[127.0.0.1]", "\x00@x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := NormalizeEmail(in)
		if err != nil {
			return
		}
		if len(got) > MaxEmailBytes || got != strings.ToLower(got) || strings.TrimSpace(got) != got || !utf8.ValidString(got) {
			t.Fatalf("NormalizeEmail(%q) = %q: not normal", in, got)
		}
		if again, err := NormalizeEmail(got); err != nil || again != got {
			t.Fatalf("not idempotent: %q → %q → %q, %v", in, got, again, err)
		}
		if strings.Count(got, "@") < 1 || strings.ContainsAny(got, "<>,\r\n") && !strings.HasPrefix(got, `"`) {
			t.Fatalf("NormalizeEmail(%q) = %q: not one bare address", in, got)
		}
	})
}

func TestParseToken(t *testing.T) {
	text, hash := newToken()
	raw, err := ParseToken(text)
	if err != nil || len(raw) != TokenBytes || hashToken(raw) != hash {
		t.Fatalf("ParseToken(newToken()) = %x, %v", raw, err)
	}
	for name, s := range map[string]string{
		"empty":        "",
		"short":        text[:42],
		"long":         text + "A",
		"padded":       text[:42] + "=",
		"std alphabet": strings.Repeat("+", 43),
		// 43 characters carry 258 bits for 256: the last one's two low bits must be zero.
		"non-canonical": strings.Repeat("A", 42) + "B",
	} {
		if _, err := ParseToken(s); err == nil {
			t.Errorf("%s: ParseToken(%q) succeeded", name, s)
		}
	}
}

// FuzzParseToken: the session cookie and the reset token come from the browser.
func FuzzParseToken(f *testing.F) {
	text, _ := newToken()
	for _, s := range []string{text, "", strings.Repeat("A", 43), strings.Repeat("_", 43), text + "=", "a.b", strings.Repeat("/", 43)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw, err := ParseToken(s)
		if err != nil {
			if raw != nil {
				t.Fatal("bytes returned with an error")
			}
			return
		}
		if len(raw) != TokenBytes {
			t.Fatalf("%d bytes", len(raw))
		}
		// One spelling per token: encoding it again gives the input.
		if back := base64.RawURLEncoding.EncodeToString(raw); back != s {
			t.Fatalf("ParseToken(%q) accepted a non-canonical spelling of %q", s, back)
		}
	})
}

func TestIPKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":              "192.0.2.1",
		"192.0.2.1:443":          "192.0.2.1",
		"::ffff:192.0.2.1":       "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":   "2001:db8:1:2::/64",
		"[2001:db8:1:2::9]:8080": "2001:db8:1:2::/64",
		"not an address":         "?not an address",
		strings.Repeat("x", 100): "?" + strings.Repeat("x", 64),
	} {
		if got := ipKey(in); got != want {
			t.Errorf("ipKey(%q) = %q, want %q", in, got, want)
		}
	}
}
