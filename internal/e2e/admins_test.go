package e2e_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
	"github.com/pocketmolt/pocketmolt/internal/pmctl"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/pmd"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// pmctlRun runs pmctl with args against the config file at config, as a person would, and
// returns its exit code, stdout and stderr. Confirmation questions get yes when yes is set.
func pmctlRun(t *testing.T, config string, args ...string) (int, string, string) {
	t.Helper()
	ios, _, out, errOut := iostreams.Test()
	f := cmdutil.NewFactory(ios, func(k string) string {
		if k == "PMCTL_CONFIG" {
			return config
		}
		return ""
	})
	code := pmctl.Run(t.Context(), f, args)
	return code, out.String(), errOut.String()
}

// clientOf is an admin API client for the config file at path, pointed at p's admin listener.
func (p *testPMD) clientOf(t *testing.T, path string) *apiclient.Client {
	t.Helper()
	cfg, err := ctlconfig.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cfg.Current()
	if err != nil {
		t.Fatal(err)
	}
	cc.Server = p.D.AdminAddr
	c, err := apiclient.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// configFor writes the pmd data dir's pmctl.yaml pointed at the running admin listener to a
// file of its own and returns its path, for pmctl runs.
func (p *testPMD) ctlConfig(t *testing.T) string {
	t.Helper()
	cfg, err := ctlconfig.Load(filepath.Join(p.cfg.DataDir, pmd.CtlConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Contexts[0].Server = p.D.AdminAddr
	path := filepath.Join(t.TempDir(), "pmctl.yaml")
	if err := ctlconfig.WriteNew(path, cfg); err != nil {
		t.Fatal(err)
	}
	return path
}

// auditBy returns the audit entries of action, newest first.
func auditBy(t *testing.T, c *apiclient.Client, action string) []wire.AuditEntry {
	t.Helper()
	es, err := c.ListAudit(t.Context(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []wire.AuditEntry
	for _, e := range es {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// Each operator has a certificate of their own, made by pmctl admins create, and the audit
// log names who did what. Before the fix there was one admin certificate, and every entry
// read admin:admin.
func TestAdminsAreNamedInTheAuditLog(t *testing.T) {
	t.Parallel()
	p := startPMD(t, func(c *pmd.Config) { c.Admin = "ops" })
	opsConfig := p.ctlConfig(t)

	alice := filepath.Join(t.TempDir(), "alice.yaml")
	code, out, errOut := pmctlRun(t, opsConfig, "admins", "create", "alice", "--out", alice)
	if code != 0 || out != "" {
		t.Fatalf("pmctl admins create: %d %q %s", code, out, errOut)
	}
	fi, err := os.Stat(alice)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("alice's config: %v, mode %v", err, fi.Mode())
	}
	cfg, err := ctlconfig.Load(alice)
	if err != nil || len(cfg.Contexts) != 1 {
		t.Fatalf("alice's config holds %+v, %v; want one context", cfg, err)
	}
	// The config works as it is, for the pmd it came from.
	code, out, errOut = pmctlRun(t, alice, "hosts", "token", "create", "edge-1")
	if code != 0 || !strings.HasPrefix(out, "pmt1.") {
		t.Fatalf("alice's token create: %d %q %s", code, out, errOut)
	}
	if code, _, errOut := pmctlRun(t, opsConfig, "hosts", "token", "create", "edge-2"); code != 0 {
		t.Fatalf("ops's token create: %s", errOut)
	}

	admin := p.clientOf(t, alice)
	es := auditBy(t, admin, "host.token.create")
	if len(es) != 2 || es[0].Actor != "admin:ops" || es[0].Target != "edge-2" || es[1].Actor != "admin:alice" || es[1].Target != "edge-1" {
		t.Fatalf("token audit entries: %+v", es)
	}
	created := auditBy(t, admin, "admin.create")
	if len(created) != 2 || created[0].Actor != "admin:ops" || created[0].Target != "alice" || created[1].Actor != "pmd" || created[1].Target != "ops" {
		t.Fatalf("admin.create entries: %+v", created)
	}
	list, err := admin.ListAdmins(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "alice" || list[1].Name != "ops" || list[0].Status != wire.CertValid {
		t.Fatalf("admins: %+v", list)
	}
	// The key went to alice's file only.
	p.noSecrets([]string{cfg.Contexts[0].KeyData}, errOut)
}

// The last valid admin certificate cannot be revoked, by name or by serial; before the fix
// `pmctl certs revoke` of the only admin certificate locked every operator out for good.
func TestLastAdminCannotBeRevoked(t *testing.T) {
	t.Parallel()
	p := startPMD(t, func(c *pmd.Config) { c.Admin = "ops" })
	ops := p.admin()
	admins, err := ops.ListAdmins(t.Context())
	if err != nil || len(admins) != 1 {
		t.Fatalf("admins: %+v, %v", admins, err)
	}
	opsSerial := admins[0].Serial

	lastRefused := func(what string, err error) {
		t.Helper()
		if wire.CodeOf(err) != wire.CodeConflict || !strings.Contains(err.Error(), "last valid admin certificate") {
			t.Fatalf("%s of the last admin: %v (code %s), want %s", what, err, wire.CodeOf(err), wire.CodeConflict)
		}
	}
	_, err = ops.RevokeCert(t.Context(), opsSerial)
	lastRefused("certs revoke", err)
	_, err = ops.RevokeAdmin(t.Context(), "ops")
	lastRefused("admins revoke", err)
	if _, err := ops.ListHosts(t.Context()); err != nil {
		t.Fatalf("the last admin no longer works after the refusals: %v", err)
	}

	// With a second admin, the first can go — and is then refused.
	b, err := ops.CreateAdmin(t.Context(), wire.AdminRequest{Name: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	bob := bundleClient(t, p, b)
	if _, err := bob.RevokeAdmin(t.Context(), "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.ListHosts(t.Context()); !apiclient.IsAuth(err) {
		t.Fatalf("the revoked admin's request: %v, want refused", err)
	}
	// Now bob is the last, on both paths; pmctl says so in one line.
	_, err = bob.RevokeCert(t.Context(), b.Serial)
	lastRefused("certs revoke", err)
	bobConfig := filepath.Join(t.TempDir(), "bob.yaml")
	writeBundleConfig(t, p, bobConfig, b)
	code, _, errOut := pmctlRun(t, bobConfig, "admins", "revoke", "bob", "--yes")
	if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "last valid admin certificate") {
		t.Fatalf("pmctl admins revoke of the last admin: %d %q", code, errOut)
	}
	if _, err := bob.ListHosts(t.Context()); err != nil {
		t.Fatalf("bob no longer works: %v", err)
	}
}

// bundleClient is an admin API client holding an admin bundle.
func bundleClient(t *testing.T, p *testPMD, b *wire.AdminBundle) *apiclient.Client {
	t.Helper()
	c, err := apiclient.New(&ctlconfig.Context{Name: b.Name, Server: p.D.AdminAddr, CAData: b.RootCA, CertData: b.Cert, KeyData: b.Key})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeBundleConfig(t *testing.T, p *testPMD, path string, b *wire.AdminBundle) {
	t.Helper()
	err := ctlconfig.WriteNew(path, &ctlconfig.Config{CurrentContext: "default", Contexts: []ctlconfig.Context{{
		Name: "default", Server: p.D.AdminAddr, CAData: b.RootCA, CertData: b.Cert, KeyData: b.Key,
	}}})
	if err != nil {
		t.Fatal(err)
	}
}

// When no admin certificate works any more — the last one's holder lost it after revoking
// the others — `pmd admin-cert` on the pmd host issues a new one from the data dir, with pmd
// running and with it stopped. Before the fix the only way back was a new CA.
func TestBreakGlassAdminCert(t *testing.T) {
	clearEnv(t)
	p := startPMD(t, func(c *pmd.Config) { c.Admin = "ops" })
	ops := p.admin()
	b, err := ops.CreateAdmin(t.Context(), wire.AdminRequest{Name: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	bob := bundleClient(t, p, b)
	if _, err := bob.RevokeAdmin(t.Context(), "ops"); err != nil {
		t.Fatal(err)
	}
	// bob's bundle is lost (the test never uses it again): no admin certificate anyone
	// holds works.
	if _, err := ops.ListHosts(t.Context()); !apiclient.IsAuth(err) {
		t.Fatalf("ops after revocation: %v", err)
	}

	for _, tt := range []struct {
		name    string
		running bool
	}{{"carol", true}, {"dave", false}} {
		if !tt.running {
			p.stop()
		}
		path := filepath.Join(t.TempDir(), tt.name+".yaml")
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		stdout, stderr, err := runCmd(ctx, "admin-cert", tt.name, "--data-dir", p.cfg.DataDir, "--out", path, "--ttl", "24h")
		cancel()
		if err != nil {
			t.Fatalf("pmd admin-cert %s (pmd running: %v): %v\n%s", tt.name, tt.running, err, stderr)
		}
		if !strings.Contains(stdout, path) || strings.Contains(stdout, "PRIVATE KEY") {
			t.Errorf("admin-cert said %q", stdout)
		}
		if !tt.running {
			p.start()
		}
		c := p.clientOf(t, path)
		if _, err := c.CreateHostToken(t.Context(), wire.TokenRequest{Name: "edge-" + tt.name}); err != nil {
			t.Fatalf("%s's certificate from admin-cert: %v", tt.name, err)
		}
		es := auditBy(t, c, "host.token.create")
		if es[0].Actor != "admin:"+tt.name {
			t.Errorf("token made with the break-glass certificate audited as %s", es[0].Actor)
		}
		created := auditBy(t, c, "admin.create")
		if created[0].Actor != "pmd" || created[0].Target != tt.name || !strings.Contains(created[0].Detail, "break-glass") {
			t.Errorf("admin-cert audited as %+v", created[0])
		}
	}

	t.Run("bad input is one line and issues nothing", func(t *testing.T) {
		before, err := p.D.Store.ListAdminCerts(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		existing := filepath.Join(t.TempDir(), "taken.yaml")
		if err := os.WriteFile(existing, []byte("keep me"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"admin-cert", "Not_A_Name", "--data-dir", p.cfg.DataDir},
			{"admin-cert", "erin", "--data-dir", p.cfg.DataDir, "--out", existing},
			{"admin-cert", "erin", "--data-dir", p.cfg.DataDir, "--ttl", "1s"},
			{"admin-cert", "erin", "--data-dir", filepath.Join(t.TempDir(), "nothing")},
		} {
			_, _, err := runCmd(t.Context(), args...)
			if err == nil || strings.Contains(err.Error(), "\n") {
				t.Errorf("%v: %v, want a one-line error", args, err)
			}
		}
		if b, _ := os.ReadFile(existing); string(b) != "keep me" {
			t.Error("admin-cert overwrote an existing file")
		}
		after, err := p.D.Store.ListAdminCerts(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before) {
			t.Errorf("refused admin-cert runs issued %d certificates", len(after)-len(before))
		}
	})
}
