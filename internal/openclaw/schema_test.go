package openclaw_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemaPath is the schema `openclaw config schema` prints for the pinned
// gateway (2026.9.6, MIT-licensed), copied from shared/testdata so the tests
// never depend on a folder outside the repository.
var schemaPath = filepath.Join("testdata", "openclaw-config.schema.json")

// compiledSchema compiles the 2.4 MB schema once per test binary.
var compiledSchema = sync.OnceValues(func() (*schemaInfo, error) {
	raw, err := os.ReadFile(schemaPath)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	info := &schemaInfo{}
	info.rebased = rebaseEmbedded(doc, "", true)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.UseRegexpEngine(info.compileRegexp)
	const url = "file:///openclaw-config.schema.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	info.schema, err = c.Compile(url)
	return info, err
})

type schemaInfo struct {
	schema *jsonschema.Schema
	// relaxed lists the schema's ECMAScript patterns whose lookaround
	// assertions Go's regexp cannot express and which are checked without
	// them. It is written only while compiling, under sync.Once.
	relaxed []string
	// rebased lists the JSON pointers of embedded plugin schemas given an
	// "$id" so that their own "#/$defs/…" references resolve.
	rebased []string
}

// rebaseEmbedded gives every subschema that carries its own "$defs" (the
// plugin config schemas pasted into plugins.entries.*.config) an "$id".
// Those schemas were standalone documents whose "$ref": "#/$defs/x" meant
// their own $defs; pasted into the big schema without an "$id" the same
// reference points at the root, which has no $defs, and compiling fails.
// An "$id" restores the meaning they had. It changes no other subschema.
func rebaseEmbedded(v any, ptr string, root bool) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if _, hasDefs := v["$defs"]; hasDefs && !root {
			if _, hasID := v["$id"]; !hasID {
				v["$id"] = "file:///embedded" + ptr + ".json"
				out = append(out, ptr)
			}
		}
		for k, child := range v {
			out = append(out, rebaseEmbedded(child, ptr+"/"+k, false)...)
		}
	case []any:
		for i, child := range v {
			out = append(out, rebaseEmbedded(child, ptr+"/"+strconv.Itoa(i), false)...)
		}
	}
	return out
}

// compileRegexp is Go's regexp, except that ECMAScript lookaround groups
// ("(?!…)", "(?=…)", "(?<!…)", "(?<=…)"), which RE2 lacks, are dropped.
// That makes those few patterns more permissive, never stricter, and none of
// them sits on a path Config writes (TestSchemaRelaxedPatternsAreOffOurPaths).
func (s *schemaInfo) compileRegexp(pat string) (jsonschema.Regexp, error) {
	if re, err := regexp.Compile(pat); err == nil {
		return re, nil
	}
	stripped, changed := stripLookaround(pat)
	if !changed {
		return nil, errors.New("pattern not supported by Go regexp: " + pat)
	}
	re, err := regexp.Compile(stripped)
	if err != nil {
		return nil, err
	}
	s.relaxed = append(s.relaxed, pat)
	return re, nil
}

// stripLookaround removes lookaround groups from an ECMAScript pattern,
// minding escapes, character classes and nested groups.
func stripLookaround(p string) (string, bool) {
	var b strings.Builder
	changed := false
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			b.WriteString(p[i : i+2])
			i++
			continue
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
		case c == '(' && (strings.HasPrefix(p[i:], "(?=") || strings.HasPrefix(p[i:], "(?!") ||
			strings.HasPrefix(p[i:], "(?<=") || strings.HasPrefix(p[i:], "(?<!")):
			end := groupEnd(p, i)
			if end < 0 {
				return p, false
			}
			i = end
			changed = true
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), changed
}

// groupEnd returns the index of the ')' closing the group opened at p[open].
func groupEnd(p string, open int) int {
	depth := 0
	inClass := false
	for i := open; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\':
			i++
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// loadSchema returns the compiled schema. Without the schema file it skips
// the test, except under CI=true, where the file must be there.
func loadSchema(t *testing.T) *schemaInfo {
	t.Helper()
	info, err := compiledSchema()
	if errors.Is(err, fs.ErrNotExist) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("openclaw schema missing under CI: %v", err)
		}
		t.Skipf("openclaw schema not available: %v", err)
	}
	if err != nil {
		t.Fatalf("load openclaw schema %s: %v", schemaPath, err)
	}
	return info
}

// validateJSON validates one JSON document against the gateway's schema.
func validateJSON(t *testing.T, s *schemaInfo, doc []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("config is not JSON: %v\n%s", err, doc)
	}
	return s.schema.Validate(inst)
}

func TestStripLookaround(t *testing.T) {
	tests := []struct{ in, want string }{
		{`^(?!(?:constructor|prototype)$)[a-z0-9][a-z0-9_-]{0,63}$`, `^[a-z0-9][a-z0-9_-]{0,63}$`},
		{`^(?!\s)(?![\s\S]*\s$)[^\p{Cs}]{1,128}$`, `^[^\p{Cs}]{1,128}$`},
		{`^[(?!]x(?=y)$`, `^[(?!]x$`},
		{`^\(?!x$`, `^\(?!x$`},
	}
	for _, tt := range tests {
		got, _ := stripLookaround(tt.in)
		if got != tt.want {
			t.Errorf("stripLookaround(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
