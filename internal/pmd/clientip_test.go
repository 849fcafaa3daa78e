package pmd

import (
	"net/http/httptest"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted, err := parseProxies([]string{"10.0.0.0/24", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	get := clientIP(trusted)
	for _, tc := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"no proxy", "198.51.100.1:4000", nil, "198.51.100.1"},
		{"an untrusted peer's header is ignored", "198.51.100.1:4000", []string{"203.0.113.9"}, "198.51.100.1"},
		{"behind a trusted proxy", "10.0.0.5:4000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"a forged first hop does not count", "10.0.0.5:4000", []string{"1.2.3.4, 203.0.113.9"}, "203.0.113.9"},
		{"two trusted proxies", "192.0.2.7:4000", []string{"203.0.113.9, 10.0.0.8"}, "203.0.113.9"},
		{"headers over several lines", "10.0.0.5:4000", []string{"1.2.3.4", "203.0.113.9"}, "203.0.113.9"},
		{"garbage after the client", "10.0.0.5:4000", []string{"203.0.113.9, nonsense"}, "10.0.0.5"},
		{"only proxies", "10.0.0.5:4000", []string{"10.0.0.6"}, "10.0.0.5"},
		{"no header from a proxy", "10.0.0.5:4000", nil, "10.0.0.5"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := get(r); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, err := parseProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Error("a bad prefix was accepted")
	}
}

func FuzzClientIP(f *testing.F) {
	trusted, _ := parseProxies([]string{"10.0.0.0/8"})
	get := clientIP(trusted)
	for _, s := range []string{"203.0.113.9", "1.2.3.4, 10.0.0.1", ", ,", "::ffff:10.0.0.1", "[::1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "10.0.0.5:1"
		r.Header.Set("X-Forwarded-For", xff)
		if got := get(r); got == "" {
			t.Fatalf("no client address for %q", xff)
		}
	})
}
