package fleet

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/httpapi"
	"github.com/pocketmolt/pocketmolt/internal/mtls"
	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/termsafe"
	"github.com/pocketmolt/pocketmolt/internal/tlsadmit"
	"github.com/pocketmolt/pocketmolt/internal/token"
	"github.com/pocketmolt/pocketmolt/internal/tunnel"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// maxEnrollBytes bounds an enrollment request body.
const maxEnrollBytes = 64 << 10

// Serve accepts agents on ln until ctx ends. cert is pmd's server certificate; its chain must
// include the root, so that an enrolling host can check the root against its token's pin.
//
// Connections that negotiate wire.ProtoTunnel with an agent certificate become tunnel
// sessions; others are plain HTTP/1.1 for POST /v1/enroll only.
func (f *Fleet) Serve(ctx context.Context, ln net.Listener, cert tls.Certificate) error {
	cfg := mtls.ServerConfig(mtls.Options{
		Cert: cert, GetCertificate: f.cfg.ServerCertificate, CA: f.ca.Pool(), Kind: wire.CertAgent, Optional: true, Check: f.CheckSerial,
		NextProtos: []string{wire.ProtoTunnel, wire.ProtoEnroll},
	})
	inner := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if cs.NegotiatedProtocol == wire.ProtoTunnel && len(cs.PeerCertificates) == 0 {
			return errors.New("tunnel needs a client certificate")
		}
		return inner(cs)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/enroll", httpapi.Handle(f.log, f.enroll))
	mux.Handle("/", httpapi.NotFound(f.log))
	srv := &http.Server{
		Handler:           f.cfg.Metrics.HTTP("agent", mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(f.log.With("listener", "agent").Handler(), slog.LevelWarn),
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){
			wire.ProtoTunnel: func(_ *http.Server, c *tls.Conn, _ http.Handler) {
				if !f.track() {
					c.Close()
					return
				}
				defer f.sessions.Done()
				f.serveTunnel(c)
			},
		},
	}
	// Handshakes are admitted at the rate pmd can finish them: a fleet reconnecting after a
	// restart would otherwise slow every one of them past its agent's timeout. The server
	// gets connections whose handshake is done, and dispatches them by ALPN as before.
	adm := f.cfg.Admission
	adm.TLS = cfg
	adm.Shed = f.cfg.Metrics.HandshakeShed
	admitted := tlsadmit.New(ln, adm, f.log.With("listener", "agent"))
	stop := context.AfterFunc(ctx, f.Close)
	defer stop()
	err := httpapi.Serve(ctx, srv, admitted)
	admitted.Close()
	f.Close()
	f.sessions.Wait()
	return err
}

// serveTunnel runs one agent session until it ends.
func (f *Fleet) serveTunnel(tc *tls.Conn) {
	cs := tc.ConnectionState()
	kind, hostID, serial, ok := mtls.Identity(&cs)
	if !ok || kind != wire.CertAgent {
		tc.Close()
		return
	}
	log := f.log.With("host_id", hostID, "remote", tc.RemoteAddr().String())
	// A host whose last session was cut for flooding waits out its penalty. Refusals are
	// counted, not logged: a flooder may reconnect as fast as it likes.
	if left, ok := f.penalised(hostID, f.cfg.Now()); ok {
		log.Debug("tunnel refused", "reason", "penalty", "retry_in", left.Round(time.Second).String())
		f.cfg.Metrics.SessionRefused("penalty")
		tc.NetConn().Close()
		return
	}
	// Again, since the handshake lets a certificate through when its status cannot be read.
	if err := f.CheckSerial(serial); err != nil {
		log.Warn("tunnel refused", "reason", err.Error())
		f.cfg.Metrics.SessionRefused("certificate")
		tc.Close()
		return
	}
	ctx := context.Background()
	h, err := f.store.GetHost(ctx, hostID)
	if err != nil || h.RevokedAt != nil {
		log.Warn("tunnel refused", "reason", "host unknown or revoked")
		f.cfg.Metrics.SessionRefused("host")
		tc.Close()
		return
	}
	sess, err := tunnel.Server(tc, log)
	if err != nil {
		log.Warn("tunnel refused", "error", err.Error())
		tc.Close()
		return
	}
	now := f.cfg.Now()
	// lastBeat stays zero until the first heartbeat: a host is online once pmd has its facts.
	c := &conn{hostID: hostID, sess: sess, serial: serial, notAfter: cs.PeerCertificates[0].NotAfter, since: now}
	log = log.With("session_id", sess.ID)
	f.register(c)
	if err := f.store.SetSession(ctx, hostID, sess.ID, now.UTC()); err != nil {
		log.Error("record session", "error", err.Error())
	}
	f.retireOlder(ctx, log, hostID, serial, h.CertSerial)
	log.Info("agent connected")
	f.cfg.Metrics.SessionOpened()
	defer f.cfg.Metrics.SessionClosed()
	if f.observer != nil {
		f.observer.Connected(hostID)
	}

	err = sess.ServeLimited(f.agentAPI(c, log), f.cfg.Tunnel, log)
	var le *tunnel.LimitError
	if errors.As(err, &le) {
		penalty := f.penalise(hostID, f.cfg.Now())
		f.cfg.Metrics.StreamRefused(le.Reason)
		f.cut(c, le.Reason, "error", err.Error(), "refused_for", penalty.String())
	}
	sess.Close()
	if f.unregister(c) {
		if _, err := f.store.ClearSession(ctx, hostID, sess.ID); err != nil {
			log.Error("clear session", "error", err.Error())
		}
	}
	if err != nil {
		log.Info("agent disconnected", "error", err.Error())
	} else {
		log.Info("agent disconnected")
	}
}

// agentAPI is what an agent may call on pmd over its session.
func (f *Fleet) agentAPI(c *conn, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/heartbeat", httpapi.Handle(log, func(w http.ResponseWriter, r *http.Request) error {
		hb, err := DecodeHeartbeat(w, r)
		if err != nil {
			return err
		}
		return f.heartbeat(r.Context(), w, c, hb, log)
	}))
	mux.Handle("POST /v1/events", httpapi.Handle(log, func(w http.ResponseWriter, r *http.Request) error {
		return f.events(w, r, c, log)
	}))
	mux.Handle("POST /v1/renew", httpapi.Handle(log, func(w http.ResponseWriter, r *http.Request) error {
		var rr wire.RenewRequest
		if err := httpapi.Decode(w, r, maxEnrollBytes, &rr); err != nil {
			return err
		}
		return f.renew(r.Context(), w, c, rr)
	}))
	for _, rt := range f.routes {
		mux.Handle(rt.pattern, httpapi.Handle(log, func(w http.ResponseWriter, r *http.Request) error {
			return rt.h(w, r, c.hostID)
		}))
	}
	mux.Handle("/", httpapi.NotFound(log))
	return f.cfg.Metrics.HTTP("tunnel", mux)
}

// DecodeHeartbeat reads and checks a heartbeat body: at most wire.MaxHeartbeatBytes of JSON
// whose facts and bot states are within bounds, their free text escaped for terminals (see
// checkStates). Every failure is a *wire.Error.
func DecodeHeartbeat(w http.ResponseWriter, r *http.Request) (wire.Heartbeat, error) {
	var hb wire.Heartbeat
	if err := httpapi.Decode(w, r, wire.MaxHeartbeatBytes, &hb); err != nil {
		return hb, err
	}
	return hb, validHeartbeat(&hb)
}

func (f *Fleet) heartbeat(ctx context.Context, w http.ResponseWriter, c *conn, hb wire.Heartbeat, log *slog.Logger) error {
	ids := make([]string, len(hb.Bots))
	for i, st := range hb.Bots {
		ids[i] = st.ID
	}
	if _, err := f.owned(ctx, c, ids, true, log); err != nil {
		return err // nothing of a report about another host's bots is recorded
	}
	facts, _ := json.Marshal(hb.Facts)
	now := f.cfg.Now()
	// Liveness lives in memory; the database gets the facts when they change and last_seen
	// at most every persistEvery, which keeps a large fleet's heartbeats off the disk.
	c.mu.Lock()
	write := !bytes.Equal(facts, c.facts) || now.Sub(c.persisted) >= persistEvery
	c.mu.Unlock()
	if write {
		if err := f.store.RecordHeartbeat(ctx, c.hostID, now.UTC(), facts, memory(hb.Facts.MemoryBytes)); err != nil {
			return fmt.Errorf("record heartbeat: %w", err)
		}
	}
	c.mu.Lock()
	c.lastBeat = now
	if write {
		c.facts, c.persisted = facts, now
	}
	declared := !c.capChecked || c.declared != hb.Facts.Capacity
	c.capChecked, c.declared = true, hb.Facts.Capacity
	c.mu.Unlock()
	if declared && write {
		f.checkCapacity(ctx, c.hostID)
		f.hostChanged(c.hostID)
	}
	if f.observer != nil {
		if err := f.observer.Observe(ctx, c.hostID, hb.Bots, hb.Observed); err != nil {
			return fmt.Errorf("record bot states: %w", err)
		}
	}
	wire.WriteJSON(w, http.StatusOK, wire.HeartbeatReply{Interval: wire.Duration(f.cfg.HeartbeatInterval), RevokedServers: f.RevokedServers()})
	return nil
}

// validHeartbeat bounds what a host may claim about itself, since it lands in the database and
// in operators' terminals: short facts must be plain text, free text is escaped, and the bot
// states must pass checkStates. It changes hb in place.
func validHeartbeat(hb *wire.Heartbeat) error {
	f := &hb.Facts
	for name, v := range map[string]string{
		"hostname": f.Hostname, "os": f.OS, "arch": f.Arch, "kernel": f.Kernel,
		"docker_version": f.DockerVersion, "agent_version": f.AgentVersion,
	} {
		if len(v) > 256 {
			return wire.Errorf(wire.CodeInvalidArgument, "heartbeat: %s is longer than 256 bytes", name)
		}
		if !termsafe.IsPlain(v) {
			return wire.Errorf(wire.CodeInvalidArgument, "heartbeat: %s holds control characters", name)
		}
	}
	if len(f.DockerError) > 1024 {
		return wire.Errorf(wire.CodeInvalidArgument, "heartbeat: docker_error is longer than 1024 bytes")
	}
	f.DockerError = termsafe.String(f.DockerError)
	if f.CPUs < 0 {
		return wire.Errorf(wire.CodeInvalidArgument, "heartbeat: cpus is negative")
	}
	if f.Capacity.Bots < 0 || f.Capacity.MemoryBytes < 0 {
		return wire.Errorf(wire.CodeInvalidArgument, "heartbeat: capacity is negative")
	}
	return checkStates("heartbeat", hb.Bots)
}

// memory is a host's reported memory as the store keeps it; 0 (unknown) when out of range.
func memory(n uint64) int64 {
	if n > math.MaxInt64 {
		return 0
	}
	return int64(n)
}

// renew signs a fresh certificate for the session's host, at most renewBurst at once and
// then one per agent certificate lifetime / renewRefills, and supersedes the one before:
// of the host's certificates only the session's and the new one stay valid (see
// store.RenewCert), and the session's only for the overlap.
func (f *Fleet) renew(ctx context.Context, w http.ResponseWriter, c *conn, rr wire.RenewRequest) error {
	now := f.cfg.Now()
	if ok, wait := f.limits.renew.Allow(c.hostID, now); !ok {
		return rateLimited(wait, "renew: host %s renewed its certificate too often", c.hostID)
	}
	iss, err := f.ca.SignAgent([]byte(rr.CSR), c.hostID, f.cfg.AgentCertTTL, now)
	if err != nil {
		return wire.Errorf(wire.CodeInvalidArgument, "renew: %v", err)
	}
	rec := CertRecord(iss.Cert, wire.CertAgent, c.hostID)
	err = f.store.InTx(ctx, func(tx *store.Store) error {
		if err := tx.RenewCert(ctx, c.hostID, c.serial, rec, now.UTC()); err != nil {
			return err
		}
		return audit(ctx, tx, now.UTC(), "host:"+c.hostID, "cert.renew", rec.Serial, "agent certificate renewed; supersedes "+c.serial)
	})
	if errors.Is(err, store.ErrHostRevoked) {
		return wire.Errorf(wire.CodePermissionDenied, "renew: host %s was revoked", c.hostID)
	}
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	wire.WriteJSON(w, http.StatusOK, wire.RenewResponse{Cert: string(iss.CertPEM)})
	return nil
}

// enroll exchanges a one-time token and a CSR for the host's first certificate. Requests are
// rate-limited per source address and overall; a token whose host has enrolled (with it or
// another token) or was revoked is refused.
func (f *Fleet) enroll(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if err := f.admitEnrollment(r.RemoteAddr, f.cfg.Now()); err != nil {
		return err
	}
	var req wire.EnrollRequest
	if err := httpapi.Decode(w, r, maxEnrollBytes, &req); err != nil {
		return err
	}
	tok, err := token.Parse(req.Token)
	if err != nil {
		return wire.Errorf(wire.CodeTokenInvalid, "enrollment token: %v", err)
	}
	if tok.RootFingerprint != pki.Fingerprint(f.ca.Root) {
		return wire.Errorf(wire.CodeTokenInvalid, "enrollment token was made for another CA")
	}
	t, err := f.store.GetToken(ctx, tok.ID)
	if errors.Is(err, store.ErrNotFound) {
		return wire.Errorf(wire.CodeTokenInvalid, "unknown enrollment token %s", tok.ID)
	}
	if err != nil {
		return err
	}
	if !tok.Matches(t.Hash) {
		return wire.Errorf(wire.CodeTokenInvalid, "enrollment token %s does not match", tok.ID)
	}
	now := f.cfg.Now().UTC()
	if t.UsedAt != nil {
		return wire.Errorf(wire.CodeTokenUsed, "enrollment token %s was already used", tok.ID)
	}
	h, err := f.store.GetHost(ctx, t.HostID)
	if err != nil {
		return err
	}
	if h.RevokedAt != nil {
		return errHostRevoked(h.Name)
	}
	if h.EnrolledAt != nil || t.InvalidatedAt != nil {
		return errHostEnrolled(h.Name, tok.ID)
	}
	if !now.Before(t.ExpiresAt) {
		return wire.Errorf(wire.CodeTokenExpired, "enrollment token %s expired at %s", tok.ID, t.ExpiresAt.Format(time.RFC3339))
	}
	iss, err := f.ca.SignAgent([]byte(req.CSR), h.ID, f.cfg.AgentCertTTL, now)
	if err != nil {
		return wire.Errorf(wire.CodeInvalidArgument, "certificate request: %v", err)
	}
	rec := CertRecord(iss.Cert, wire.CertAgent, h.ID)
	err = f.store.InTx(ctx, func(tx *store.Store) error {
		if err := tx.Enroll(ctx, tok.ID, now, rec); err != nil {
			return err
		}
		// What bounds the capacity the host may declare (an older agent sends no facts).
		if req.Facts != nil {
			if err := tx.SetHostMemory(ctx, h.ID, memory(req.Facts.MemoryBytes)); err != nil {
				return err
			}
		}
		return audit(ctx, tx, now, "host:"+h.ID, "host.enroll", h.Name, "certificate "+rec.Serial)
	})
	switch {
	case errors.Is(err, store.ErrTokenUsed):
		return wire.Errorf(wire.CodeTokenUsed, "enrollment token %s was already used", tok.ID)
	case errors.Is(err, store.ErrTokenExpired):
		return wire.Errorf(wire.CodeTokenExpired, "enrollment token %s expired", tok.ID)
	case errors.Is(err, store.ErrHostEnrolled):
		return errHostEnrolled(h.Name, tok.ID)
	case errors.Is(err, store.ErrHostRevoked):
		return errHostRevoked(h.Name)
	case err != nil:
		return fmt.Errorf("enroll host %s: %w", h.ID, err)
	}
	f.log.Info("host enrolled", "host_id", h.ID, "host_name", h.Name, "serial", rec.Serial)
	wire.WriteJSON(w, http.StatusOK, wire.EnrollResponse{
		HostID: h.ID, HostName: h.Name, Cert: string(iss.CertPEM), RootCA: string(f.ca.RootPEM()),
		Heartbeat: wire.Duration(f.cfg.HeartbeatInterval),
	})
	return nil
}

func errHostEnrolled(name, tokenID string) error {
	return wire.Errorf(wire.CodeConflict, "host %s is already enrolled, so enrollment token %s can no longer enroll it; to enroll another machine under this name, remove the host first (pmctl hosts remove %s) and make a new token", name, tokenID, name)
}

func errHostRevoked(name string) error {
	return wire.Errorf(wire.CodePermissionDenied, "host %s was revoked; remove it (pmctl hosts remove %s) before enrolling a host by that name", name, name)
}

// CertRecord is the store's record of an issued certificate.
func CertRecord(c *x509.Certificate, kind, hostID string) store.Certificate {
	return store.Certificate{
		Serial: pki.SerialString(c), Kind: kind, Subject: c.Subject.CommonName, HostID: hostID,
		Fingerprint: pki.Fingerprint(c), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
	}
}
