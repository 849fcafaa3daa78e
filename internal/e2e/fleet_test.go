package e2e_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/pmd"
	"github.com/pocketmolt/pocketmolt/internal/store/storetest"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func TestAgentsConnectReconnectAndSurviveRestart(t *testing.T) {
	p := startPMD(t, nil)
	a1 := p.enroll("edge-1")
	a2 := p.enroll("edge-2")
	p.waitStatus("edge-1", wire.HostOnline)
	p.waitStatus("edge-2", wire.HostOnline)

	hs, err := p.admin().ListHosts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 {
		t.Fatalf("hosts = %d, want 2", len(hs))
	}
	for _, h := range hs {
		if h.Facts == nil || h.Facts.Hostname == "" || h.Facts.CPUs == 0 || h.Facts.MemoryBytes == 0 || h.Facts.AgentVersion != "test" {
			t.Errorf("host %s facts incomplete: %+v", h.Name, h.Facts)
		}
		if h.Facts != nil && h.Facts.DockerVersion != wire.DockerUnavailable {
			t.Errorf("host %s docker = %q, want %q with no engine configured", h.Name, h.Facts.DockerVersion, wire.DockerUnavailable)
		}
	}

	t.Run("pmd calls the agent over the tunnel", func(t *testing.T) {
		hc, err := p.D.Fleet.Client(a1.hostID())
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Get("http://agent/v1/info")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var info wire.AgentInfo
		if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || info.HostID != a1.hostID() || info.AgentVersion != "test" {
			t.Fatalf("info = %d %+v", resp.StatusCode, info)
		}
	})

	t.Run("a cut connection reconnects", func(t *testing.T) {
		before := sessionCount(a1)
		a1.cut()
		eventually(t, 10*time.Second, "a new session", func() bool { return sessionCount(a1) > before })
		p.waitStatus("edge-1", wire.HostOnline)
	})

	outer := t
	t.Run("a quiet host goes offline", func(t *testing.T) {
		a2.stop()
		p.waitStatus("edge-2", wire.HostOffline)
		a2 = runAgent(outer, a2.A.State) // lives on after this subtest
		p.waitStatus("edge-2", wire.HostOnline)
	})

	t.Run("both come back after pmd restarts, without enrolling again", func(t *testing.T) {
		p.restart()
		p.waitStatus("edge-1", wire.HostOnline)
		p.waitStatus("edge-2", wire.HostOnline)
	})
}

// sessionCount is how many TCP connections the agent has dialled.
func sessionCount(a *testAgent) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.conns)
}

func TestRevokeEndsSessionAtOnceAndForever(t *testing.T) {
	p := startPMD(t, nil)
	a1 := p.enroll("edge-1")
	p.enroll("edge-2")
	p.waitStatus("edge-1", wire.HostOnline)
	p.waitStatus("edge-2", wire.HostOnline)

	h, err := p.admin().RevokeHost(t.Context(), "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	if h.Status != wire.HostRevoked {
		t.Fatalf("status after revoke = %s", h.Status)
	}
	eventually(t, time.Second, "session gone", func() bool {
		_, err := p.D.Fleet.Client(a1.hostID())
		return err != nil
	})
	// It keeps trying and keeps being refused at the handshake.
	n := sessionCount(a1)
	eventually(t, 10*time.Second, "refused reconnects", func() bool { return sessionCount(a1) >= n+2 })
	if _, err := p.D.Fleet.Client(a1.hostID()); err == nil {
		t.Fatal("revoked host has a session again")
	}
	if got := p.status("edge-1"); got != wire.HostRevoked {
		t.Fatalf("status = %s", got)
	}
	eventually(t, 5*time.Second, "the agent to say why", func() bool {
		return contains(a1.Logs.String(), "refused this host's certificate")
	})
	p.waitStatus("edge-2", wire.HostOnline)

	// A revoked host gets no new token under its name until it is removed.
	if _, err := p.admin().CreateHostToken(t.Context(), wire.TokenRequest{Name: "edge-1"}); wire.CodeOf(err) != wire.CodeConflict {
		t.Fatalf("token for revoked host: %v", err)
	}
	if err := p.admin().RemoveHost(t.Context(), "edge-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.admin().GetHost(t.Context(), "edge-1"); wire.CodeOf(err) != wire.CodeNotFound {
		t.Fatalf("removed host: %v", err)
	}

	audit, err := p.admin().ListAudit(t.Context(), 50)
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]bool{}
	for _, e := range audit {
		actions[e.Action] = true
	}
	for _, want := range []string{"pmd.init", "host.token.create", "host.enroll", "host.revoke", "host.remove"} {
		if !actions[want] {
			t.Errorf("audit log lacks %s: %v", want, actions)
		}
	}
}

func TestRevokeCertificateBySerial(t *testing.T) {
	p := startPMD(t, nil)
	a := p.enroll("edge-1")
	p.waitStatus("edge-1", wire.HostOnline)
	h, err := p.admin().GetHost(t.Context(), "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.admin().RevokeCert(t.Context(), h.CertSerial); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "session gone", func() bool {
		_, err := p.D.Fleet.Client(a.hostID())
		return err != nil
	})
	certs, err := p.admin().ListCerts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, c := range certs {
		if c.Serial == h.CertSerial {
			found = c.RevokedAt != nil
		}
	}
	if !found {
		t.Fatalf("certificate %s not listed as revoked", h.CertSerial)
	}
}

func TestRenewalKeepsTheSession(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a certificate renewal")
	}
	t.Parallel()
	p := startPMD(t, func(c *pmd.Config) { c.AgentCertTTL = time.Minute })
	a := p.enroll("edge-1")
	p.waitStatus("edge-1", wire.HostOnline)
	h0, err := p.admin().GetHost(t.Context(), "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	conns := sessionCount(a)
	eventually(t, 90*time.Second, "a renewed certificate", func() bool {
		h, err := p.admin().GetHost(t.Context(), "edge-1")
		return err == nil && h.CertSerial != h0.CertSerial
	})
	if got := sessionCount(a); got != conns {
		t.Fatalf("renewal reconnected: %d connections, want %d", got, conns)
	}
	p.waitStatus("edge-1", wire.HostOnline)
	// pmd records the new certificate as it issues it; the agent stores it once the reply
	// reaches it, a moment later.
	var held, recorded string
	eventually(t, 10*time.Second, "the agent to hold the certificate pmd recorded", func() bool {
		_, leaf, err := a.A.State.Certificate()
		if err != nil {
			t.Fatal(err)
		}
		h1, err := p.admin().GetHost(t.Context(), "edge-1")
		if err != nil {
			t.Fatal(err)
		}
		held, recorded = serialOf(leaf), h1.CertSerial
		return held == recorded
	})
	if held == h0.CertSerial {
		t.Fatalf("the agent still holds its first certificate %s", held)
	}
	// The next connection uses the renewed certificate.
	a.cut()
	eventually(t, 10*time.Second, "reconnect", func() bool { return sessionCount(a) > conns })
	p.waitStatus("edge-1", wire.HostOnline)
}

// The same fleet on PostgreSQL, the production store.
func TestFleetOnPostgres(t *testing.T) {
	pg := storetest.PostgresURL(t)
	p := startPMD(t, func(c *pmd.Config) { c.Database = pg })
	a1 := p.enroll("edge-1")
	p.enroll("edge-2")
	p.waitStatus("edge-1", wire.HostOnline)
	p.waitStatus("edge-2", wire.HostOnline)

	b, err := p.admin().CreateBot(t.Context(), botRequest("alice", "edge-2"))
	if err != nil || b.HostName != "edge-2" {
		t.Fatalf("create bot on postgres: %+v, %v", b, err)
	}
	if _, err := p.admin().RevokeHost(t.Context(), "edge-1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "edge-1's session gone", func() bool {
		_, err := p.D.Fleet.Client(a1.hostID())
		return err != nil
	})
	p.restart()
	p.waitStatus("edge-2", wire.HostOnline)
	if got := p.status("edge-1"); got != wire.HostRevoked {
		t.Fatalf("edge-1 after restart = %s", got)
	}
	if _, err := p.admin().GetBot(t.Context(), "alice"); err != nil {
		t.Fatalf("bot lost across a restart: %v", err)
	}
	if _, err := p.admin().DeleteBot(t.Context(), "alice", true); err != nil {
		t.Fatal(err)
	}
}
