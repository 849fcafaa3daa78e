// Package configtest helps tests keep the commented example configs in examples/ true to the
// daemons' config structs and flags.
package configtest

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// Keys are the mapstructure keys of the struct type T.
func Keys[T any](t testing.TB) []string {
	t.Helper()
	var keys []string
	rt := reflect.TypeFor[T]()
	for i := range rt.NumField() {
		k := rt.Field(i).Tag.Get("mapstructure")
		if k == "" {
			t.Fatalf("%s.%s has no mapstructure tag", rt.Name(), rt.Field(i).Name)
		}
		keys = append(keys, k)
	}
	return keys
}

// CommentAbove finds the line `key:` or `# key:` and returns the comment block above it.
func CommentAbove(lines []string, key string) (string, bool) {
	re := regexp.MustCompile(`^(# )?` + regexp.QuoteMeta(key) + `:`)
	for i, l := range lines {
		if !re.MatchString(l) {
			continue
		}
		start := i
		for start > 0 && strings.HasPrefix(lines[start-1], "#") {
			start--
		}
		return strings.Join(lines[start:i], "\n"), true
	}
	return "", false
}

// Uncomment turns `# key: value` lines for the given keys into `key: value`, and says how
// many it turned.
func Uncomment(b []byte, keys []string) ([]byte, int) {
	lines := strings.Split(string(b), "\n")
	n := 0
	for i, l := range lines {
		for _, k := range keys {
			if strings.HasPrefix(l, "# "+k+": ") {
				lines[i] = strings.TrimPrefix(l, "# ")
				n++
			}
		}
	}
	return []byte(strings.Join(lines, "\n")), n
}

// FlagDefault is a flag's default as an example writes it ("24h", not "24h0m0s"), or "" when
// it has none.
func FlagDefault(f *pflag.Flag) string {
	switch f.Value.Type() {
	case "duration":
		d, _ := time.ParseDuration(f.DefValue)
		return ShortDuration(d)
	case "stringSlice":
		if f.DefValue == "[]" {
			return ""
		}
	case "bool":
		if f.DefValue == "false" {
			return ""
		}
	}
	return f.DefValue
}

// ShortDuration writes d as a person would: "2m", "24h", "1h30m".
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
