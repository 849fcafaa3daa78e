package output_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

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
