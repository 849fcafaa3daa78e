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
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/pocketmolt/pocketmolt/internal/httpapi"
	"github.com/pocketmolt/pocketmolt/internal/mtls"
	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/store"
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
		Cert: cert, CA: f.ca.Pool(), Kind: wire.CertAgent, Optional: true, Check: f.CheckSerial,
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
		return f.heartbeat(r.Context(), w, c, hb)
	}))
	mux.Handle("POST /v1/events", httpapi.Handle(log, func(w http.ResponseWriter, r *http.Request) error {
		var ev wire.Events
		if err := httpapi.Decode(w, r, wire.MaxHeartbeatBytes, &ev); err != nil {
			return err
		}
		for _, e := range ev.Events {
			log.Info("bot event", "bot_id", e.BotID, "action", e.Action, "detail", e.Detail)
			f.cfg.Metrics.BotEvent(e.Action)
		}
		if f.observer != nil {
			if err := f.observer.Observe(r.Context(), c.hostID, ev.Bots, false); err != nil {
				return fmt.Errorf("record bot states: %w", err)
			}
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	mux.Handle("POST /v1/renew", httpapi.Handle(log, func(w http.ResponseWriter, r *http.Request) error {
		var rr wire.RenewRequest
		if err := httpapi.Decode(w, r, maxEnrollBytes, &rr); err != nil {
			return err
		}
		return f.renew(r.Context(), w, c, rr)
	}))
	mux.Handle("/", httpapi.NotFound(log))
	return f.cfg.Metrics.HTTP("tunnel", mux)
}

// DecodeHeartbeat reads and checks a heartbeat body: at most wire.MaxHeartbeatBytes of JSON
// whose facts are within bounds. Every failure is a *wire.Error.
func DecodeHeartbeat(w http.ResponseWriter, r *http.Request) (wire.Heartbeat, error) {
	var hb wire.Heartbeat
	if err := httpapi.Decode(w, r, wire.MaxHeartbeatBytes, &hb); err != nil {
		return hb, err
	}
	return hb, validHeartbeat(hb)
}

func (f *Fleet) heartbeat(ctx context.Context, w http.ResponseWriter, c *conn, hb wire.Heartbeat) error {
	facts, _ := json.Marshal(hb.Facts)
	now := f.cfg.Now()
	// Liveness lives in memory; the database gets the facts when they change and last_seen
	// at most every persistEvery, which keeps a large fleet's heartbeats off the disk.
	c.mu.Lock()
	write := !bytes.Equal(facts, c.facts) || now.Sub(c.persisted) >= persistEvery
	c.mu.Unlock()
	if write {
		if err := f.store.RecordHeartbeat(ctx, c.hostID, now.UTC(), facts); err != nil {
			return fmt.Errorf("record heartbeat: %w", err)
		}
	}
	c.mu.Lock()
	c.lastBeat = now
	if write {
		c.facts, c.persisted = facts, now
	}
	c.mu.Unlock()
	if f.observer != nil {
		if err := f.observer.Observe(ctx, c.hostID, hb.Bots, hb.Observed); err != nil {
			return fmt.Errorf("record bot states: %w", err)
		}
	}
	wire.WriteJSON(w, http.StatusOK, wire.HeartbeatReply{Interval: wire.Duration(f.cfg.HeartbeatInterval)})
	return nil
}

// validHeartbeat bounds what a host may claim about itself, since it lands in the database and
// in operators' terminals.
func validHeartbeat(hb wire.Heartbeat) error {
	f := hb.Facts
	for name, v := range map[string]string{
		"hostname": f.Hostname, "os": f.OS, "arch": f.Arch, "kernel": f.Kernel,
		"docker_version": f.DockerVersion, "agent_version": f.AgentVersion,
	} {
		if len(v) > 256 {
			return wire.Errorf(wire.CodeInvalidArgument, "heartbeat: %s is longer than 256 bytes", name)
		}
		if strings.ContainsFunc(v, unicode.IsControl) {
			return wire.Errorf(wire.CodeInvalidArgument, "heartbeat: %s holds control characters", name)
		}
	}
	if len(hb.Bots) > 10000 {
		return wire.Errorf(wire.CodeInvalidArgument, "heartbeat: more than 10000 bots")
	}
	if len(f.DockerError) > 1024 {
		return wire.Errorf(wire.CodeInvalidArgument, "heartbeat: docker_error is longer than 1024 bytes")
	}
	if f.CPUs < 0 {
		return wire.Errorf(wire.CodeInvalidArgument, "heartbeat: cpus is negative")
	}
	return nil
}

func (f *Fleet) renew(ctx context.Context, w http.ResponseWriter, c *conn, rr wire.RenewRequest) error {
	now := f.cfg.Now()
	iss, err := f.ca.SignAgent([]byte(rr.CSR), c.hostID, f.cfg.AgentCertTTL, now)
	if err != nil {
		return wire.Errorf(wire.CodeInvalidArgument, "renew: %v", err)
	}
	rec := CertRecord(iss.Cert, wire.CertAgent, c.hostID)
	err = f.store.InTx(ctx, func(tx *store.Store) error {
		if err := tx.InsertCert(ctx, rec); err != nil {
			return err
		}
		if err := tx.SetHostCert(ctx, c.hostID, rec.Serial); err != nil {
			return err
		}
		return audit(ctx, tx, now.UTC(), "host:"+c.hostID, "cert.renew", rec.Serial, "agent certificate renewed")
	})
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	wire.WriteJSON(w, http.StatusOK, wire.RenewResponse{Cert: string(iss.CertPEM)})
	return nil
}

// enroll exchanges a one-time token and a CSR for the host's first certificate.
func (f *Fleet) enroll(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
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
	if !now.Before(t.ExpiresAt) {
		return wire.Errorf(wire.CodeTokenExpired, "enrollment token %s expired at %s", tok.ID, t.ExpiresAt.Format(time.RFC3339))
	}
	h, err := f.store.GetHost(ctx, t.HostID)
	if err != nil {
		return err
	}
	if h.RevokedAt != nil {
		return wire.Errorf(wire.CodePermissionDenied, "host %s was revoked", h.Name)
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
		return audit(ctx, tx, now, "host:"+h.ID, "host.enroll", h.Name, "certificate "+rec.Serial)
	})
	switch {
	case errors.Is(err, store.ErrTokenUsed):
		return wire.Errorf(wire.CodeTokenUsed, "enrollment token %s was already used", tok.ID)
	case errors.Is(err, store.ErrTokenExpired):
		return wire.Errorf(wire.CodeTokenExpired, "enrollment token %s expired", tok.ID)
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

// CertRecord is the store's record of an issued certificate.
func CertRecord(c *x509.Certificate, kind, hostID string) store.Certificate {
	return store.Certificate{
		Serial: pki.SerialString(c), Kind: kind, Subject: c.Subject.CommonName, HostID: hostID,
		Fingerprint: pki.Fingerprint(c), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
	}
}
