package output_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/pocketmolt/pocketmolt/internal/output"
)

type row struct {
	Name  string `json:"name" yaml:"name"`
	State string `json:"state,omitempty" yaml:"state,omitempty"`
}

func TestPrint(t *testing.T) {
	rows := []row{{"alpha", "on"}, {"b", ""}, {"tab\there", "multi\nline"}}
	table := output.Columns(rows,
		output.Column[row]{Header: "NAME", Value: func(r row) string { return r.Name }},
		output.Column[row]{Header: "STATE", Value: func(r row) string { return r.State }},
	)
	tests := []struct {
		name   string
		tty    bool
		format output.Format
		want   string
	}{
		{"terminal table", true, output.Table, "NAME      STATE\nalpha     on\nb\ntab here  multi line\n"},
		{"piped table", false, output.Table, "alpha\ton\nb\t\ntab here\tmulti line\n"},
		{"json", false, output.JSON, "[\n  {\n    \"name\": \"alpha\",\n    \"state\": \"on\"\n  },\n  {\n    \"name\": \"b\"\n  },\n  {\n    \"name\": \"tab\\there\",\n    \"state\": \"multi\\nline\"\n  }\n]\n"},
		{"yaml", true, output.YAML, "- name: alpha\n  state: \"on\"\n- name: b\n- name: \"tab\\there\"\n  state: |-\n    multi\n    line\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := output.Print(&b, tt.tty, tt.format, rows, table); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got:\n%q\nwant:\n%q", b.String(), tt.want)
			}
		})
	}
}

func TestKeyValues(t *testing.T) {
	var b bytes.Buffer
	kv := output.KeyValues(output.KV{Key: "name", Value: "edge-1"}, output.KV{Key: "last seen", Value: "now"})
	if err := output.Print(&b, true, output.Table, nil, kv); err != nil {
		t.Fatal(err)
	}
	if want := "name:       edge-1\nlast seen:  now\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestFormatFlag(t *testing.T) {
	var f output.Format
	if f.String() != "table" {
		t.Errorf("zero Format = %q", f.String())
	}
	if err := f.Set("JSON"); err != nil || f != output.JSON {
		t.Errorf("Set(JSON) = %v, %q", err, f)
	}
	if err := f.Set("xml"); err == nil || !strings.Contains(err.Error(), "table, json, yaml") {
		t.Errorf("Set(xml) = %v", err)
	}
	if _, err := output.ParseFormat("csv"); err == nil || !strings.Contains(err.Error(), `"csv"`) {
		t.Errorf("ParseFormat(csv) = %v", err)
	}
}

func TestHumanFormats(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		0: "just now", 2 * time.Second: "2s ago", 3 * time.Minute: "3m ago", 5 * time.Hour: "5h ago",
		72 * time.Hour: "3d ago", -10 * time.Minute: "in 10m",
		-(9*time.Minute + 59*time.Second): "in 10m", 59*time.Minute + 50*time.Second: "1h ago",
	} {
		if got := output.Ago(now, now.Add(-d)); got != want {
			t.Errorf("Ago(-%v) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[uint64]string{512: "512 B", 2048: "2 KiB", 8_300_000_000: "7.7 GiB", 1 << 40: "1 TiB", 150 << 30: "150 GiB"} {
		if got := output.Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// hostile holds what a bot could put in any string pmctl prints.
const hostile = "\x1b]0;pwned\x07 \x1b[2J \u009b2J \x7f \u202eevil\u202c ok\rFAKE crlf\r\n tab\t ✓"

type hostileRow struct {
	Name  string            `json:"name" yaml:"name"`
	Error string            `json:"error" yaml:"error"`
	Tags  map[string]string `json:"tags" yaml:"tags"`
	List  []string          `json:"list" yaml:"list"`
}

// unsafeAt returns the offset of the first character a terminal could act on in s (a CR not
// followed by LF counts), or -1. It is written out without termsafe, to check it.
func unsafeAt(s string) int {
	for i, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' && !(r == '\r' && strings.HasPrefix(s[i:], "\r\n")) ||
			r == 0x7f || r >= 0x80 && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 {
			return i
		}
	}
	return -1
}

func TestPrintEscapesWhatTerminalsActOn(t *testing.T) {
	v := []hostileRow{{Name: "alice", Error: hostile, Tags: map[string]string{hostile: hostile}, List: []string{hostile, "multi\nline"}}}
	table := output.Columns(v,
		output.Column[hostileRow]{Header: "NAME", Value: func(r hostileRow) string { return r.Name }},
		output.Column[hostileRow]{Header: "ERROR", Value: func(r hostileRow) string { return r.Error }},
	)
	for _, f := range []output.Format{output.Table, output.JSON, output.YAML} {
		for _, tty := range []bool{true, false} {
			var b bytes.Buffer
			if err := output.Print(&b, tty, f, v, table); err != nil {
				t.Fatal(err)
			}
			if i := unsafeAt(b.String()); i >= 0 {
				t.Errorf("%s (tty %v) writes %q raw: %q", f, tty, b.String()[i:i+1], b.String())
			}
			var back []hostileRow
			switch f {
			case output.JSON:
				if err := json.Unmarshal(b.Bytes(), &back); err != nil || !reflect.DeepEqual(back, v) {
					t.Errorf("json does not read back as the value (%v):\n%s", err, b.String())
				}
			case output.YAML:
				if err := yaml.Unmarshal(b.Bytes(), &back); err != nil || !reflect.DeepEqual(back, v) {
					t.Errorf("yaml does not read back as the value (%v):\n%s\n%+v", err, b.String(), back)
				}
			case output.Table:
				if !strings.Contains(b.String(), `\x1b]0;pwned\x07`) || !strings.Contains(b.String(), `\u202eevil`) {
					t.Errorf("table hides what was escaped: %q", b.String())
				}
			}
		}
	}
	t.Run("key values", func(t *testing.T) {
		var b bytes.Buffer
		kv := output.KeyValues(output.KV{Key: "last error", Value: hostile})
		if err := output.Print(&b, true, output.Table, nil, kv); err != nil {
			t.Fatal(err)
		}
		if i := unsafeAt(b.String()); i >= 0 || strings.Count(b.String(), "\n") != 1 {
			t.Errorf("key/value view: %q", b.String())
		}
	})
	t.Run("invalid utf-8", func(t *testing.T) {
		for _, f := range []output.Format{output.JSON, output.YAML} {
			var b bytes.Buffer
			if err := output.Print(&b, false, f, map[string]string{"x": "bad \xff\xfe bytes \x9b2J"}, nil); err != nil {
				t.Fatal(err)
			}
			if i := unsafeAt(b.String()); i >= 0 || !utf8.Valid(b.Bytes()) {
				t.Errorf("%s: %q", f, b.String())
			}
		}
	})
}

// FuzzSafeEncoding holds JSON and YAML output to their promise for any string: nothing a
// terminal acts on, and the same value read back (invalid UTF-8 aside, which JSON replaces
// and YAML carries as binary).
func FuzzSafeEncoding(f *testing.F) {
	for _, s := range []string{hostile, "", "plain", "multi\nline\r\n", "\xff", "\u2066\u2069", "- a: b", "'\"\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := map[string][]string{s: {s}}
		j, err := output.SafeJSON(v)
		if err != nil {
			t.Fatal(err)
		}
		y, err := output.SafeYAML(v)
		if err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{"json": j, "yaml": y} {
			if i := unsafeAt(string(b)); i >= 0 {
				t.Fatalf("%s of %q holds an unsafe character at %d: %q", name, s, i, b)
			}
		}
		if !utf8.ValidString(s) {
			return
		}
		var fromJSON, fromYAML map[string][]string
		if err := json.Unmarshal(j, &fromJSON); err != nil || !reflect.DeepEqual(fromJSON, v) {
			t.Fatalf("json of %q reads back as %q (%v)", s, fromJSON, err)
		}
		// yaml.v3 loses some values on its own (a string of newlines alone; " 0\n" does not
		// even parse back): those are held to safety only.
		plain, err := yaml.Marshal(v)
		if err != nil || yaml.Unmarshal(plain, &fromYAML) != nil || !reflect.DeepEqual(fromYAML, v) {
			return
		}
		fromYAML = nil
		if err := yaml.Unmarshal(y, &fromYAML); err != nil || !reflect.DeepEqual(fromYAML, v) {
			t.Fatalf("yaml of %q reads back as %q (%v):\n%s", s, fromYAML, err, y)
		}
	})
}
