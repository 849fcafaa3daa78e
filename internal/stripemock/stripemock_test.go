package stripemock

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStartAnswersAndStopsWithTheTest(t *testing.T) {
	var base string
	t.Run("running", func(t *testing.T) {
		base = Start(t)
		if !strings.HasPrefix(base, "http://127.0.0.1:") {
			t.Fatalf("base %q: want http://127.0.0.1:<port>", base)
		}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/v1/customers/cus_123", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer sk_test_123")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("get customer: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var cust struct{ ID, Object string }
		// stripe-mock echoes the id from the path into its customer fixture.
		if err := json.Unmarshal(body, &cust); err != nil || resp.StatusCode != http.StatusOK ||
			cust.ID != "cus_123" || cust.Object != "customer" {
			t.Fatalf("get customer: %d %s (%v)", resp.StatusCode, body, err)
		}
	})
	if base == "" {
		t.Skip("stripe-mock did not start (skipped above)")
	}
	// The subtest's cleanup has run: nothing may answer on that port any more.
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(base + "/v1/customers")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("stripe-mock at %s still answers after its test ended", base)
	}
}

func TestTwoAtOnceGetTheirOwnPorts(t *testing.T) {
	a, b := Start(t), Start(t)
	if a == b {
		t.Fatalf("two stripe-mocks share %s", a)
	}
}

func TestFindIn(t *testing.T) {
	empty, withBin, notExec := t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(withBin, "stripe-mock"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(notExec, "stripe-mock"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(empty, "stripe-mock"), 0o755); err != nil { // a directory is not a binary
		t.Fatal(err)
	}

	got, err := findIn([]string{empty, notExec, withBin})
	if err != nil || got != filepath.Join(withBin, "stripe-mock") {
		t.Fatalf("findIn = %q, %v; want the executable in %s", got, err, withBin)
	}
	_, err = findIn([]string{empty, notExec})
	if err == nil {
		t.Fatal("findIn found a directory or a non-executable file")
	}
	if !strings.Contains(err.Error(), empty) || !strings.Contains(err.Error(), notExec) {
		t.Fatalf("error %q does not name the directories searched", err)
	}
}

func TestTailKeepsTheEnd(t *testing.T) {
	tl := &tail{max: 10}
	for _, l := range []string{"aaaa", "bbbb", "cccc", "dddd"} {
		tl.add(l)
	}
	if got := tl.String(); got != "cccc\ndddd" {
		t.Fatalf("tail = %q, want the last lines within 10 bytes", got)
	}
	tl.add(strings.Repeat("x", 50)) // one line longer than max is still kept whole
	if got := tl.String(); got != strings.Repeat("x", 50) {
		t.Fatalf("tail = %q", got)
	}
}
