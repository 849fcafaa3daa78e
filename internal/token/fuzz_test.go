package token

import (
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that whatever it accepts re-encodes to the same
// canonical text and parses back to the same token, and that its errors never echo anything
// that could be a secret (a run of 8 or more base64url characters from the input).
func FuzzParse(f *testing.F) {
	sec := "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80"
	id := "0123456789abcdef"
	good := "pmt1." + id + "." + sec + "." + fp
	for _, s := range []string{
		good,
		" " + good + "\n",
		"",
		"pmt1",
		"pmt1...",
		"pmt2." + id + "." + sec + "." + fp,
		"pmt1." + sec + "." + fp,
		"pmt1." + id + "." + sec[:42] + "_." + fp,
		"pmt1." + id + "." + sec + "=." + fp,
		"pmt1." + id + "." + sec + "." + strings.ToUpper(fp),
		"pmt1." + strings.ToUpper(id) + "." + sec + "." + fp,
		good + ".",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		tok, err := Parse(in)
		if err != nil {
			for _, run := range base64URLRuns(err.Error()) {
				if len(run) >= 8 && !strings.Contains(vocabulary, run) {
					t.Fatalf("error %q contains %q, which is not Parse's own wording", err, run)
				}
			}
			return
		}
		enc := tok.Encode()
		if enc != strings.TrimSpace(in) {
			t.Fatalf("Parse(%q).Encode() = %q, want the trimmed input", in, enc)
		}
		back, err := Parse(enc)
		if err != nil || back != tok {
			t.Fatalf("Parse(Encode()) = %#v, %v; want the same token", back, err)
		}
		if tok.Hash() == nil || !tok.Matches(tok.Hash()) {
			t.Fatal("an accepted token has no valid hash")
		}
	})
}

// vocabulary holds the words of Parse's error messages; any other long run of base64url
// characters in an error could only have come from the input.
const vocabulary = "malformed enrollment token: empty too long does not start with pmt1 unsupported version " +
	"(this pmagent reads pmt1) want 4 dot-separated parts, got id must be 16 lower-case hex characters " +
	"secret must be 43 base64url characters secret is not canonical base64url root fingerprint must be 64"

// base64URLRuns returns the runs of base64url characters in s.
func base64URLRuns(s string) []string {
	var runs []string
	start := -1
	for i := 0; i <= len(s); i++ {
		if i < len(s) && isBase64URL(s[i:i+1]) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			runs = append(runs, s[start:i])
		}
		start = -1
	}
	return runs
}
