package pmctl_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func TestAdminsCreate(t *testing.T) {
	t.Run("prints a config with one context for the same pmd", func(t *testing.T) {
		h := newHarness(t)
		r := h.run(t, runOpts{}, "admins", "create", "carol", "--ttl", "720h")
		if r.code != 0 {
			t.Fatalf("code %d: %s", r.code, r.errOut)
		}
		cfg, err := ctlconfig.Parse([]byte(r.out))
		if err != nil {
			t.Fatalf("stdout is not a pmctl config: %v\n%s", err, r.out)
		}
		cur, err := cfg.Current()
		if err != nil || len(cfg.Contexts) != 1 {
			t.Fatalf("config has %d contexts, current %v", len(cfg.Contexts), err)
		}
		if cur.Server != h.srv.Context.Server || cur.CertData != "CERT PEM" || cur.KeyData != "KEY PEM" || cur.CAData != "ROOT PEM" {
			t.Errorf("context = %+v", cur)
		}
		if !strings.Contains(r.errOut, "Created admin carol (certificate c1") || strings.Contains(r.errOut, "KEY PEM") {
			t.Errorf("stderr = %q", r.errOut)
		}
		req := h.srv.Requests()[0]
		var body wire.AdminRequest
		if err := json.Unmarshal([]byte(req.Body), &body); err != nil || req.Method+" "+req.Path != "POST /v1/admins" || body.Name != "carol" || body.TTL != wire.Duration(720*60*60*1e9) {
			t.Errorf("request %s %s %s (%v)", req.Method, req.Path, req.Body, err)
		}
	})

	t.Run("--out writes a new file, 0600, and nothing on stdout", func(t *testing.T) {
		h := newHarness(t)
		path := filepath.Join(t.TempDir(), "carol.yaml")
		r := h.run(t, runOpts{}, "admins", "create", "carol", "--out", path)
		if r.code != 0 || r.out != "" {
			t.Fatalf("code %d, stdout %q: %s", r.code, r.out, r.errOut)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("file %v, mode %v", err, fi.Mode())
		}
		cfg, err := ctlconfig.Load(path)
		if err != nil || len(cfg.Contexts) != 1 || cfg.Contexts[0].KeyData != "KEY PEM" {
			t.Fatalf("config %+v, %v", cfg, err)
		}
		// A second run refuses to overwrite it, before asking pmd for anything.
		before := len(h.srv.Requests())
		r = h.run(t, runOpts{}, "admins", "create", "carol", "--out", path)
		if r.code != 1 || !strings.Contains(r.errOut, "already exists") || len(h.srv.Requests()) != before {
			t.Fatalf("code %d, %d requests: %s", r.code, len(h.srv.Requests())-before, r.errOut)
		}
	})

	t.Run("a refusal is one line", func(t *testing.T) {
		h := newHarness(t)
		r := h.run(t, runOpts{}, "admins", "create", "Bad")
		if r.code != 1 || r.out != "" || r.errOut != "error: create admin Bad: admin name \"Bad\": use lower case\n" {
			t.Fatalf("code %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
		}
	})
}

func TestAdminsListAndRevoke(t *testing.T) {
	h := newHarness(t)
	r := h.run(t, runOpts{tty: true}, "admins", "list")
	want := "NAME   SERIAL  STATUS   NOT AFTER\n" +
		"alice  a1      valid    2027-11-22T12:00:00Z\n" +
		"bob    b1      revoked  2026-11-23T12:00:00Z\n"
	if r.code != 0 || r.out != want {
		t.Fatalf("code %d\n%s%s\nwant\n%s", r.code, r.out, r.errOut, want)
	}

	r = h.run(t, runOpts{tty: true}, "admins", "revoke", "bob", "--yes")
	if r.code != 0 || r.errOut != "Revoked 1 certificates of admin bob.\n" {
		t.Fatalf("code %d: %q", r.code, r.errOut)
	}
	r = h.run(t, runOpts{tty: true, stdin: "n\n"}, "admins", "revoke", "bob")
	if r.code != 2 {
		t.Fatalf("answering no: code %d: %q", r.code, r.errOut)
	}
	r = h.run(t, runOpts{}, "admins", "revoke", "alice", "--yes")
	if r.code != 1 || r.errOut != "error: revoke admin alice: admin alice holds the last valid admin certificate\n" {
		t.Fatalf("last admin: code %d: %q", r.code, r.errOut)
	}
}
