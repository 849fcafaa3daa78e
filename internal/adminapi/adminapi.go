// Package adminapi is pmd's admin API: JSON over HTTPS on its own listener, for clients with
// admin certificates from pmd's CA (pmctl). Every mutating call is written to the audit log by
// the layer it calls, in the same transaction as the change.
package adminapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/admins"
	"github.com/pocketmolt/pocketmolt/internal/bots"
	"github.com/pocketmolt/pocketmolt/internal/fleet"
	"github.com/pocketmolt/pocketmolt/internal/httpapi"
	"github.com/pocketmolt/pocketmolt/internal/mtls"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// API serves the admin endpoints.
type API struct {
	Fleet  *fleet.Fleet
	Admins *admins.Service
	Bots   *bots.Service
	Store  *store.Store
	Log    *slog.Logger
	// Customers serves users, subscriptions and credits; nil leaves those routes out.
	Customers *Customers
	// Usage serves model usage reports; nil makes their routes answer unavailable.
	Usage UsageReports
}

type actorKey struct{}

// Handler returns the admin API's routes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, h httpapi.HandlerFunc) { mux.Handle(pattern, a.authed(h)) }
	route("GET /v1/hosts", a.listHosts)
	route("GET /v1/hosts/{ref}", a.getHost)
	route("PATCH /v1/hosts/{ref}", a.setHost)
	route("POST /v1/hosts/tokens", a.createToken)
	route("POST /v1/hosts/{ref}/revoke", a.revokeHost)
	route("DELETE /v1/hosts/{ref}", a.removeHost)
	route("GET /v1/certs", a.listCerts)
	route("POST /v1/certs/{serial}/revoke", a.revokeCert)
	route("POST /v1/hosts/{ref}/drain", a.drainHost(true))
	route("POST /v1/hosts/{ref}/undrain", a.drainHost(false))
	route("GET /v1/audit", a.listAudit)
	route("POST /v1/admins", a.createAdmin)
	route("GET /v1/admins", a.listAdmins)
	route("POST /v1/admins/{name}/revoke", a.revokeAdmin)
	route("POST /v1/bots", a.createBot)
	route("GET /v1/bots", a.listBots)
	route("GET /v1/bots/{ref}", a.getBot)
	route("PATCH /v1/bots/{ref}", a.editBot)
	route("POST /v1/bots/{ref}/stop", a.setDesired(wire.DesiredStopped))
	route("POST /v1/bots/{ref}/start", a.setDesired(wire.DesiredRunning))
	route("POST /v1/bots/{ref}/restart", a.restartBot)
	route("DELETE /v1/bots/{ref}", a.deleteBot)
	route("GET /v1/bots/{ref}/logs", a.botLogs)
	route("GET /v1/bots/{ref}/health", a.botHealth)
	route("POST /v1/bots/{ref}/chat", a.chat)
	a.customerRoutes(route)
	a.usageRoutes(route)
	mux.Handle("/", httpapi.NotFound(a.Log))
	return mux
}

// authed checks the caller's admin certificate on every request — not only at the handshake,
// so a certificate revoked while its connection is open stops working at once — and puts the
// actor's name in the request's context for the audit log.
func (a *API) authed(h httpapi.HandlerFunc) http.Handler {
	return httpapi.Handle(a.Log, func(w http.ResponseWriter, r *http.Request) error {
		kind, name, serial, ok := mtls.Identity(r.TLS)
		if !ok || kind != wire.CertAdmin {
			w.Header().Set("Connection", "close")
			return wire.Errorf(wire.CodeUnauthenticated, "an admin certificate is required")
		}
		if err := a.Fleet.CheckSerial(serial); err != nil {
			if !errors.Is(err, fleet.ErrCertUnknown) && !errors.Is(err, fleet.ErrCertRevoked) && !errors.Is(err, fleet.ErrCertSuperseded) {
				return err // the store is out of reach (503) or failed (500): not the caller's fault
			}
			w.Header().Set("Connection", "close")
			return wire.Errorf(wire.CodeUnauthenticated, "admin certificate %s: %v", serial, err)
		}
		ctx := context.WithValue(r.Context(), actorKey{}, "admin:"+name)
		return h(w, r.WithContext(ctx))
	})
}

func actor(r *http.Request) string {
	s, _ := r.Context().Value(actorKey{}).(string)
	return s
}

func (a *API) listHosts(w http.ResponseWriter, r *http.Request) error {
	hs, err := a.Fleet.Hosts(r.Context())
	if err != nil {
		return err
	}
	if err := a.Bots.FillUsage(r.Context(), hs); err != nil {
		return err
	}
	wire.WriteJSON(w, http.StatusOK, hs)
	return nil
}

// writeHost answers with one host and its bots' usage.
func (a *API) writeHost(w http.ResponseWriter, r *http.Request, status int, h wire.Host, err error) error {
	if err != nil {
		return err
	}
	hs := []wire.Host{h}
	if err := a.Bots.FillUsage(r.Context(), hs); err != nil {
		return err
	}
	wire.WriteJSON(w, status, hs[0])
	return nil
}

func (a *API) getHost(w http.ResponseWriter, r *http.Request) error {
	h, err := a.Fleet.Host(r.Context(), r.PathValue("ref"))
	return a.writeHost(w, r, http.StatusOK, h, err)
}

func (a *API) setHost(w http.ResponseWriter, r *http.Request) error {
	var u wire.HostUpdate
	if err := httpapi.DecodeStrict(w, r, 16<<10, &u); err != nil {
		return err
	}
	h, err := a.Fleet.SetCapacity(r.Context(), actor(r), r.PathValue("ref"), u)
	return a.writeHost(w, r, http.StatusOK, h, err)
}

func (a *API) drainHost(draining bool) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		h, err := a.Fleet.SetDraining(r.Context(), actor(r), r.PathValue("ref"), draining)
		return a.writeHost(w, r, http.StatusOK, h, err)
	}
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request) error {
	var req wire.TokenRequest
	if err := httpapi.DecodeStrict(w, r, 16<<10, &req); err != nil {
		return err
	}
	var resp wire.TokenResponse
	var err error
	if req.ForBot != "" {
		resp, err = a.Fleet.CreateTokenForBot(r.Context(), actor(r), req.Name, time.Duration(req.TTL), req.ForBot)
	} else {
		resp, err = a.Fleet.CreateToken(r.Context(), actor(r), req.Name, time.Duration(req.TTL))
	}
	if err != nil {
		return err
	}
	wire.WriteJSON(w, http.StatusCreated, resp)
	return nil
}

func (a *API) revokeHost(w http.ResponseWriter, r *http.Request) error {
	h, err := a.Fleet.RevokeHost(r.Context(), actor(r), r.PathValue("ref"))
	return a.writeHost(w, r, http.StatusOK, h, err)
}

func (a *API) removeHost(w http.ResponseWriter, r *http.Request) error {
	if err := a.Fleet.RemoveHost(r.Context(), actor(r), r.PathValue("ref")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listCerts(w http.ResponseWriter, r *http.Request) error {
	cs, err := a.Fleet.Certs(r.Context())
	if err != nil {
		return err
	}
	wire.WriteJSON(w, http.StatusOK, cs)
	return nil
}

func (a *API) revokeCert(w http.ResponseWriter, r *http.Request) error {
	c, err := a.Fleet.RevokeCert(r.Context(), actor(r), r.PathValue("serial"))
	if err != nil {
		return err
	}
	wire.WriteJSON(w, http.StatusOK, c)
	return nil
}

// MaxAuditLimit bounds one page of the audit log.
const MaxAuditLimit = 1000

func (a *API) listAudit(w http.ResponseWriter, r *http.Request) error {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxAuditLimit {
			return wire.Errorf(wire.CodeInvalidArgument, "limit %q: use a number from 1 to %d", s, MaxAuditLimit)
		}
		limit = n
	}
	es, err := a.Store.ListAudit(r.Context(), limit)
	if err != nil {
		return err
	}
	out := make([]wire.AuditEntry, 0, len(es))
	for _, e := range es {
		out = append(out, wire.AuditEntry{ID: e.ID, Time: e.Time, Actor: e.Actor, Action: e.Action, Target: e.Target, Detail: e.Detail})
	}
	wire.WriteJSON(w, http.StatusOK, out)
	return nil
}

// Server returns the admin API's HTTP server with mutual TLS: TLS 1.3, admin certificates
// from pmd's CA only, revocation checked at the handshake and on every request. cert picks
// pmd's server certificate at each handshake.
func (a *API) Server(cert func(*tls.ClientHelloInfo) (*tls.Certificate, error), ca *x509.CertPool) *http.Server {
	return &http.Server{
		Handler: a.Handler(),
		TLSConfig: mtls.ServerConfig(mtls.Options{
			GetCertificate: cert, CA: ca, Kind: wire.CertAdmin, Check: a.Fleet.CheckSerial,
			NextProtos: []string{"http/1.1"},
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.Log.With("listener", "admin").Handler(), slog.LevelWarn),
	}
}
