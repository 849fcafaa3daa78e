package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func TestHTTPLabelsByRoute(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/hosts/{ref}", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /v1/bots", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusConflict) })
	mux.HandleFunc("GET /v1/logs", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "line\n")
		w.(http.Flusher).Flush()         // streams keep working through the wrapper
		w.WriteHeader(http.StatusTeapot) // too late: the status stays 200
	})
	srv := httptest.NewServer(m.HTTP("admin", mux))
	defer srv.Close()

	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/hosts/a"}, {"GET", "/v1/hosts/b"}, {"POST", "/v1/bots"}, {"GET", "/v1/logs"}, {"GET", "/nope"},
		{"X-RANDOM-1", "/nope"}, {"X-RANDOM-2", "/nope"},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	want := `
# HELP pocketmolt_http_requests_total HTTP requests pmd answered, by server (public, admin, agent, tunnel), method, route and status code.
# TYPE pocketmolt_http_requests_total counter
pocketmolt_http_requests_total{code="200",method="GET",route="GET /v1/hosts/{ref}",server="admin"} 2
pocketmolt_http_requests_total{code="200",method="GET",route="GET /v1/logs",server="admin"} 1
pocketmolt_http_requests_total{code="404",method="GET",route="unmatched",server="admin"} 1
pocketmolt_http_requests_total{code="404",method="other",route="unmatched",server="admin"} 2
pocketmolt_http_requests_total{code="409",method="POST",route="POST /v1/bots",server="admin"} 1
`
	if err := testutil.CollectAndCompare(m.requests, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.duration); n != 5 {
		t.Errorf("%d duration series, want 5 (one per server/method/route)", n)
	}
}

func TestEventsAndNil(t *testing.T) {
	var none *Metrics // metrics off: every call is a no-op
	none.SessionOpened()
	none.BotEvent("died")
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	if got := none.HTTP("admin", h); got == nil {
		t.Fatal("nil Metrics dropped the handler")
	}

	m := New(prometheus.NewRegistry())
	m.SessionOpened()
	m.SessionOpened()
	m.SessionClosed()
	m.BotEvent(wire.EventOOMKilled)
	m.BotEvent("made-up-by-an-agent")
	if v := testutil.ToFloat64(m.sessions.WithLabelValues("opened")); v != 2 {
		t.Errorf("opened = %v", v)
	}
	if v := testutil.ToFloat64(m.sessions.WithLabelValues("closed")); v != 1 {
		t.Errorf("closed = %v", v)
	}
	if v := testutil.ToFloat64(m.events.WithLabelValues(wire.EventOOMKilled)); v != 1 {
		t.Errorf("oom-killed = %v", v)
	}
	if v := testutil.ToFloat64(m.events.WithLabelValues("other")); v != 1 {
		t.Errorf("other = %v", v)
	}
}

func TestStateCollector(t *testing.T) {
	hosts := []wire.Host{
		{Name: "edge-1", Status: wire.HostOnline, Connected: true, Bots: 2, MemoryAllocated: 4 << 30,
			Capacity: wire.Capacity{Bots: 7, MemoryBytes: 15 << 30}},
		{Name: "edge-2", Status: wire.HostOffline, CapacityRefused: "declares 100000 bots, over the limit of 8"},
		{Name: "old", Status: wire.HostRevoked},
	}
	bots := []wire.Bot{
		{Desired: "running", Status: "running", Health: "healthy", HostName: "edge-1", DiskUsage: 3 << 20, Resources: wire.Resources{DiskBytes: 10 << 30}},
		{Desired: "running", Status: "running", Health: "healthy", HostName: "edge-1", DiskUsage: 1 << 20},
		{Desired: "running", Status: "failed", HostName: "edge-2", DiskUsage: 20 << 20, Resources: wire.Resources{DiskBytes: 16 << 20}},
	}
	var failHosts error
	s := State{
		Hosts: func(context.Context) ([]wire.Host, error) { return hosts, failHosts },
		Bots:  func(context.Context) ([]wire.Bot, error) { return bots, nil },
		Log:   slog.New(slog.DiscardHandler),
	}
	want := `
# HELP pocketmolt_bots Bots by desired state, observed status and health.
# TYPE pocketmolt_bots gauge
pocketmolt_bots{desired="running",health="healthy",status="running"} 2
pocketmolt_bots{desired="running",health="",status="failed"} 1
# HELP pocketmolt_bots_over_disk_limit Bots whose state and workspace take more than their disk limit; their agents keep them stopped.
# TYPE pocketmolt_bots_over_disk_limit gauge
pocketmolt_bots_over_disk_limit 1
# HELP pocketmolt_host_bot_disk_bytes Disk the bots on a host take (their state and workspace), as its agent last measured.
# TYPE pocketmolt_host_bot_disk_bytes gauge
pocketmolt_host_bot_disk_bytes{host="edge-1"} 4.194304e+06
pocketmolt_host_bot_disk_bytes{host="edge-2"} 2.097152e+07
# HELP pocketmolt_host_bots Bots placed on a host.
# TYPE pocketmolt_host_bots gauge
pocketmolt_host_bots{host="edge-1"} 2
pocketmolt_host_bots{host="edge-2"} 0
# HELP pocketmolt_host_capacity_memory_bytes Memory a host offers bots: what it declares, held to its limit.
# TYPE pocketmolt_host_capacity_memory_bytes gauge
pocketmolt_host_capacity_memory_bytes{host="edge-1"} 1.610612736e+10
pocketmolt_host_capacity_memory_bytes{host="edge-2"} 0
# HELP pocketmolt_host_capacity_refused 1 if pmd refuses the capacity a host declares (more than its limit), else 0.
# TYPE pocketmolt_host_capacity_refused gauge
pocketmolt_host_capacity_refused{host="edge-1"} 0
pocketmolt_host_capacity_refused{host="edge-2"} 1
# HELP pocketmolt_hosts Hosts by status.
# TYPE pocketmolt_hosts gauge
pocketmolt_hosts{status="draining"} 0
pocketmolt_hosts{status="offline"} 1
pocketmolt_hosts{status="online"} 1
pocketmolt_hosts{status="pending"} 0
pocketmolt_hosts{status="revoked"} 1
# HELP pocketmolt_store_up 1 if the last scrape could read the store, else 0.
# TYPE pocketmolt_store_up gauge
pocketmolt_store_up 1
# HELP pocketmolt_tunnel_sessions Agent tunnel sessions open now.
# TYPE pocketmolt_tunnel_sessions gauge
pocketmolt_tunnel_sessions 1
`
	names := []string{"pocketmolt_bots", "pocketmolt_bots_over_disk_limit", "pocketmolt_host_bot_disk_bytes", "pocketmolt_host_bots", "pocketmolt_host_capacity_memory_bytes", "pocketmolt_host_capacity_refused",
		"pocketmolt_hosts", "pocketmolt_store_up", "pocketmolt_tunnel_sessions"}
	if err := testutil.CollectAndCompare(s, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(s); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	// A store that cannot be read is store_up 0, not a failed scrape.
	failHosts = errors.New("database is locked")
	down := `
# HELP pocketmolt_store_up 1 if the last scrape could read the store, else 0.
# TYPE pocketmolt_store_up gauge
pocketmolt_store_up 0
`
	if err := testutil.CollectAndCompare(s, strings.NewReader(down), "pocketmolt_store_up"); err != nil {
		t.Error(err)
	}
}

// TestHandlerServesRegistry: the exposition endpoint serves what is registered, the Go and
// process collectors included.
func TestHandlerServesRegistry(t *testing.T) {
	reg := NewRegistry()
	New(reg).BotEvent(wire.EventDied)
	rec := httptest.NewRecorder()
	Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{`pocketmolt_bot_events_total{action="died"} 1`, "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(body, want) {
			t.Errorf("no %q in /metrics", want)
		}
	}
}

func TestCustomerMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.StripeEvent("invoice.paid", "applied")
	m.StripeEvent("invoice.paid", "duplicate")
	m.StripeEvent("made.up\x1b", "applied")
	m.StripeEvent("invoice.paid", "nonsense")
	var nilM *Metrics
	nilM.StripeEvent("invoice.paid", "applied") // metrics off: no panic
	reg.MustRegister(Customers{
		Users: func(context.Context) (int, error) { return 3, nil },
		Subscriptions: func(context.Context) ([]wire.Subscription, error) {
			return []wire.Subscription{{Status: "active", Source: "stripe"}, {Status: "active", Source: "stripe"}, {Status: "past_due", Source: "stripe"}, {Status: "active", Source: "grant"}}, nil
		},
	})
	want := `
# HELP pocketmolt_stripe_events_total Stripe webhook events billing handled, by type and result (applied, duplicate, ignored, error).
# TYPE pocketmolt_stripe_events_total counter
pocketmolt_stripe_events_total{result="applied",type="invoice.paid"} 1
pocketmolt_stripe_events_total{result="applied",type="other"} 1
pocketmolt_stripe_events_total{result="duplicate",type="invoice.paid"} 1
pocketmolt_stripe_events_total{result="error",type="invoice.paid"} 1
# HELP pocketmolt_subscriptions Subscriptions by status (Stripe's: active, past_due, canceled…) and source (stripe, grant, test).
# TYPE pocketmolt_subscriptions gauge
pocketmolt_subscriptions{source="grant",status="active"} 1
pocketmolt_subscriptions{source="stripe",status="active"} 2
pocketmolt_subscriptions{source="stripe",status="past_due"} 1
# HELP pocketmolt_users Customer accounts.
# TYPE pocketmolt_users gauge
pocketmolt_users 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pocketmolt_stripe_events_total", "pocketmolt_subscriptions", "pocketmolt_users"); err != nil {
		t.Fatal(err)
	}
}
