package wire_test

import (
	"encoding/json"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func TestDurationMarshalJSON(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, `"0s"`},
		{10 * time.Second, `"10s"`},
		{90 * time.Minute, `"1h30m0s"`},
		{1500 * time.Millisecond, `"1.5s"`},
		{-5 * time.Minute, `"-5m0s"`},
		{time.Nanosecond, `"1ns"`},
	}
	for _, tt := range tests {
		t.Run(tt.in.String(), func(t *testing.T) {
			b, err := json.Marshal(wire.Duration(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("Marshal(%v) = %s, want %s", tt.in, b, tt.want)
			}
		})
	}
}

func TestDurationUnmarshalJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"seconds", `"10s"`, 10 * time.Second, false},
		{"compound", `"1h30m"`, 90 * time.Minute, false},
		{"fraction", `"1.5s"`, 1500 * time.Millisecond, false},
		{"negative", `"-5m"`, -5 * time.Minute, false},
		{"zero string", `"0"`, 0, false},
		{"nanoseconds as a number", `1000000000`, time.Second, false},
		{"zero number", `0`, 0, false},
		{"negative number", `-1`, -time.Nanosecond, false},
		{"null leaves the value", `null`, 42, false},

		{"number without unit in a string", `"10"`, 0, true},
		{"unknown unit", `"10 parsecs"`, 0, true},
		{"words", `"ten seconds"`, 0, true},
		{"empty string", `""`, 0, true},
		{"fractional number", `1.5`, 0, true},
		{"number overflowing int64", `9223372036854775808`, 0, true},
		{"string overflowing int64", `"9999999999h"`, 0, true},
		{"bool", `true`, 0, true},
		{"object", `{"s":10}`, 0, true},
		{"array", `["10s"]`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const sentinel = wire.Duration(42)
			d := sentinel
			err := json.Unmarshal([]byte(tt.in), &d)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Unmarshal(%s) = %v, want an error", tt.in, time.Duration(d))
				}
				if d != sentinel {
					t.Errorf("Unmarshal(%s) failed but changed the value to %v", tt.in, time.Duration(d))
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", tt.in, err)
			}
			if time.Duration(d) != tt.want {
				t.Errorf("Unmarshal(%s) = %v, want %v", tt.in, time.Duration(d), tt.want)
			}
		})
	}
}

// TestDurationJSONRoundTrip sends durations through the wire types that carry them.
func TestDurationJSONRoundTrip(t *testing.T) {
	for _, d := range []time.Duration{0, time.Nanosecond, 10 * time.Second, 90 * time.Minute, 1500 * time.Millisecond, -3 * time.Hour} {
		t.Run(d.String(), func(t *testing.T) {
			in := wire.HeartbeatReply{Interval: wire.Duration(d)}
			b, err := json.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			var out wire.HeartbeatReply
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatalf("Unmarshal(%s): %v", b, err)
			}
			if out.Interval != in.Interval {
				t.Errorf("round trip through %s = %v, want %v", b, time.Duration(out.Interval), d)
			}
		})
	}
}

func TestDurationMarshalYAML(t *testing.T) {
	type doc struct {
		Timeout wire.Duration `yaml:"timeout"`
	}
	b, err := yaml.Marshal(doc{Timeout: wire.Duration(90 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "timeout: 1m30s\n"; got != want {
		t.Errorf("yaml.Marshal = %q, want %q", got, want)
	}
	// The string it writes is one the JSON side reads back.
	var back struct {
		Timeout string `yaml:"timeout"`
	}
	if err := yaml.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	var d wire.Duration
	if err := json.Unmarshal([]byte(`"`+back.Timeout+`"`), &d); err != nil || d != wire.Duration(90*time.Second) {
		t.Errorf("YAML's %q read back as %v, %v; want 1m30s", back.Timeout, time.Duration(d), err)
	}
}
