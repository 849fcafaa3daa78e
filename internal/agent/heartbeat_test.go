package agent

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/hostfacts"
	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/tunnel"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Over a real tunnel to a stand-in pmd that refuses renewals with 429 and Retry-After, and
// names a revoked server certificate in its heartbeat replies: the agent asks for a renewal
// once, not at every heartbeat, and keeps the revoked serial in its state dir.
func TestHeartbeatsHonourRetryAfterAndKeepRevokedServers(t *testing.T) {
	now := time.Now()
	ca, err := pki.NewCA("Test", now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, csrPEM, err := newKeyAndCSR("pmagent")
	if err != nil {
		t.Fatal(err)
	}
	// Issued 50 minutes ago for an hour: past 2/3 of its life, so a renewal is due.
	iss, err := ca.SignAgent(csrPEM, "host-1", time.Hour, now.Add(-50*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	st := &State{Dir: t.TempDir(), Identity: Identity{HostID: "host-1"}}
	if err := st.saveCertificate(iss.CertPEM, keyPEM); err != nil {
		t.Fatal(err)
	}

	var beats, renewals atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/heartbeat", func(w http.ResponseWriter, r *http.Request) {
		beats.Add(1)
		wire.WriteJSON(w, http.StatusOK, wire.HeartbeatReply{Interval: wire.Duration(10 * time.Millisecond), RevokedServers: []string{"5e1f", "0a"}})
	})
	mux.HandleFunc("POST /v1/renew", func(w http.ResponseWriter, r *http.Request) {
		renewals.Add(1)
		wire.WriteError(w, &wire.Error{Code: wire.CodeRateLimited, Message: "too often", RetryAfter: time.Hour})
	})

	log := slog.New(slog.DiscardHandler)
	pmdConn, agentConn := net.Pipe()
	pmdSide, err := tunnel.Server(pmdConn, log)
	if err != nil {
		t.Fatal(err)
	}
	defer pmdSide.Close()
	go pmdSide.Serve(mux, log)
	agentSide, err := tunnel.Client(agentConn, log)
	if err != nil {
		t.Fatal(err)
	}
	defer agentSide.Close()

	a := &Agent{State: st, Facts: hostfacts.Collector{DiskPath: st.Dir}, Log: log}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var up atomic.Bool
	go func() { done <- a.heartbeats(ctx, agentSide, log, &up) }()
	deadline := time.Now().Add(10 * time.Second)
	for beats.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if n := beats.Load(); n < 20 {
		t.Fatalf("%d heartbeats", n)
	}
	if n := renewals.Load(); n != 1 {
		t.Fatalf("%d renewal requests over %d heartbeats, want 1: Retry-After was not honoured", n, beats.Load())
	}
	got, err := st.RevokedServers()
	if err != nil || !slices.Equal(got, []string{"0a", "5e1f"}) {
		t.Fatalf("revoked servers kept: %q, %v", got, err)
	}
}
