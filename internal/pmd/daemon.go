package pmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/pocketmolt/pocketmolt/internal/accounts"
	"github.com/pocketmolt/pocketmolt/internal/adminapi"
	"github.com/pocketmolt/pocketmolt/internal/admins"
	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/bots"
	"github.com/pocketmolt/pocketmolt/internal/credits"
	"github.com/pocketmolt/pocketmolt/internal/fleet"
	"github.com/pocketmolt/pocketmolt/internal/httpapi"
	"github.com/pocketmolt/pocketmolt/internal/metrics"
	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/secret"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/usage"
	"github.com/pocketmolt/pocketmolt/internal/web"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Daemon is a running pmd: its store, CA, fleet and three listeners.
type Daemon struct {
	Store *store.Store
	CA    *pki.CA
	Fleet *fleet.Fleet
	Bots  *bots.Service
	// Accounts, Billing and Credits are the customers' side: sign-up, subscriptions, credits.
	Accounts *accounts.Service
	Billing  *billing.Service
	Credits  *credits.Ledger
	// Usage counts model calls and debits credits for them.
	Usage *usage.Service
	// PublicURL is where customers and Stripe reach pmd.
	PublicURL string
	// Metrics is nil unless metrics-addr is set.
	Metrics *metrics.Metrics
	// Addresses actually bound (useful with ":0"); MetricsAddr is "" when metrics are off.
	PublicAddr, AgentAddr, AdminAddr, MetricsAddr string

	cfg      Config
	log      *slog.Logger
	certs    *serverCerts
	public   net.Listener
	agents   net.Listener
	admin    net.Listener
	metrics  net.Listener
	web      *web.Server
	registry *prometheus.Registry
	closeAll func()
}

// Open loads an initialised installation and binds its listeners; Run serves them. The
// daemon holds the data dir's lock (see LockFile) from Open until Run returns, so Open refuses
// a data dir that another pmd is using.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (d *Daemon, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	kr, err := secret.LoadKeyring(cfg.KeyFile(), os.Getenv("PMD_MASTER_KEY"))
	if err != nil {
		lock.release()
		return nil, err
	}
	st, err := store.Open(ctx, cfg.DatabaseURL())
	if err != nil {
		lock.release()
		return nil, err
	}
	d = &Daemon{Store: st, cfg: cfg, log: log}
	closers := []func(){lock.release, func() { st.Close() }}
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	d.closeAll = closeAll
	// Not d.closeAll: d is nil by the time an error return runs this.
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	if d.CA, err = loadCA(ctx, st, kr); err != nil {
		return nil, err
	}
	d.certs = &serverCerts{st: st, kr: kr, ca: d.CA, log: log}
	if _, err = d.certs.refresh(ctx, time.Now()); err != nil {
		return nil, err
	}
	// Sessions recorded by an earlier run are gone with it.
	if err := st.ClearAllSessions(ctx); err != nil {
		return nil, err
	}
	for _, l := range []struct {
		addr, name string
		ln         *net.Listener
		bound      *string
	}{
		{cfg.PublicAddr, "public-addr", &d.public, &d.PublicAddr},
		{cfg.AgentAddr, "agent-addr", &d.agents, &d.AgentAddr},
		{cfg.AdminAddr, "admin-addr", &d.admin, &d.AdminAddr},
		{cfg.MetricsAddr, "metrics-addr", &d.metrics, &d.MetricsAddr},
	} {
		if l.addr == "" {
			continue // metrics off
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.name, err)
		}
		closers = append(closers, func() { ln.Close() })
		*l.ln = ln
		*l.bound = ln.Addr().String()
	}
	if d.metrics != nil {
		d.registry = metrics.NewRegistry()
		d.Metrics = metrics.New(d.registry)
	}
	fc := cfg.FleetConfig()
	fc.AgentAddress = advertised(cfg, d.AgentAddr)
	fc.Metrics = d.Metrics
	fc.ServerCertificate = d.certs.Get
	d.Fleet = fleet.New(st, d.CA, fc, log)
	if err := d.RefreshServerCert(ctx, time.Now()); err != nil {
		return nil, err
	}
	diskLimit, err := cfg.DiskLimit()
	if err != nil {
		return nil, err
	}
	models, err := d.openModels(cfg)
	if err != nil {
		return nil, err
	}
	d.Bots = bots.New(st, d.Fleet, kr, bots.Config{Image: cfg.BotImage, StartTimeout: cfg.BotStartTimeout, DiskLimit: diskLimit, Models: models}, log)
	d.Fleet.SetObserver(d.Bots)
	if err := d.openCustomers(cfg, kr); err != nil {
		return nil, err
	}
	if d.registry != nil {
		d.registry.MustRegister(metrics.State{Hosts: d.hosts, Bots: d.Bots.List, Log: log.With("listener", "metrics")})
		d.registry.MustRegister(metrics.Customers{Users: d.countUsers, Subscriptions: d.subscriptions})
	}
	return d, nil
}

// Run serves until ctx ends or a listener fails, then closes everything.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.closeAll()
	d.log.Info("pmd serving", "public_addr", d.PublicAddr, "agent_addr", d.AgentAddr, "admin_addr", d.AdminAddr,
		"metrics_addr", d.MetricsAddr, "database", redactURL(d.cfg.DatabaseURL()), "root_fingerprint", pki.Fingerprint(d.CA.Root))
	api := &adminapi.API{
		Fleet: d.Fleet, Bots: d.Bots, Store: d.Store, Log: d.log.With("listener", "admin"),
		Admins:    &admins.Service{Store: d.Store, CA: d.CA},
		Customers: &adminapi.Customers{Accounts: d.Accounts, Billing: d.Billing, Credits: d.Credits},
		Usage:     d.Usage,
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { d.Fleet.Run(ctx); return nil })
	g.Go(func() error { return d.Bots.Run(ctx) })
	g.Go(func() error { d.Billing.Run(ctx); return nil })
	g.Go(func() error { return wrap("accounts", d.Accounts.Run(ctx)) })
	g.Go(func() error { d.runServerCert(ctx); return nil })
	g.Go(func() error {
		return wrap("agent listener", d.Fleet.Serve(ctx, d.agents, *d.certs.cur.Load()))
	})
	g.Go(func() error {
		srv := api.Server(d.certs.Get, d.CA.Pool())
		srv.Handler = d.Metrics.HTTP("admin", srv.Handler)
		return wrap("admin listener", httpapi.Serve(ctx, srv, d.admin))
	})
	g.Go(func() error {
		return wrap("public listener", httpapi.Serve(ctx, d.publicServer(), d.public))
	})
	if d.metrics != nil {
		g.Go(func() error {
			return wrap("metrics listener", httpapi.Serve(ctx, d.metricsServer(), d.metrics))
		})
	}
	err := g.Wait()
	d.Bots.Wait()
	d.log.Info("pmd stopped")
	return err
}

// publicServer serves the public HTTP address: health for load balancers, the customer
// pages and the webhooks.
func (d *Daemon) publicServer() *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", httpapi.Handle(d.log, func(w http.ResponseWriter, r *http.Request) error {
		if err := d.Store.Ping(r.Context()); err != nil {
			return wire.Errorf(wire.CodeUnavailable, "database unavailable")
		}
		wire.WriteJSON(w, http.StatusOK, map[string]any{"ok": true, "hosts_connected": d.Fleet.Connected()})
		return nil
	}))
	mux.Handle("POST /webhooks/stripe", d.Billing.Webhook())
	mux.Handle("/", d.web)
	return &http.Server{
		Handler:           d.Metrics.HTTP("public", mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(d.log.With("listener", "public").Handler(), slog.LevelWarn),
	}
}

// metricsServer serves Prometheus metrics at /metrics on metrics-addr.
func (d *Daemon) metricsServer() *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(d.registry))
	mux.Handle("/", httpapi.NotFound(d.log))
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(d.log.With("listener", "metrics").Handler(), slog.LevelWarn),
	}
}

// hosts lists hosts with their bot usage, as the admin API does, for the metrics.
func (d *Daemon) hosts(ctx context.Context) ([]wire.Host, error) {
	hs, err := d.Fleet.Hosts(ctx)
	if err != nil {
		return nil, err
	}
	return hs, d.Bots.FillUsage(ctx, hs)
}

// advertised is the agent address hosts should dial: the first --server-name the certificate
// was made for, else a dialable form of the bound address.
func advertised(cfg Config, bound string) string {
	_, port, _ := net.SplitHostPort(bound)
	if len(cfg.ServerName) > 0 {
		return net.JoinHostPort(cfg.ServerName[0], port)
	}
	return dialAddr(bound)
}

func wrap(what string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
