package e2e_test

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/pmd"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// scrape reads pmd's /metrics into series → value.
func scrape(t *testing.T, p *testPMD) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.D.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("/metrics: %s %s", resp.Status, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad exposition line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsSeeTheFleet: with metrics-addr set, pmd's /metrics counts enrollments,
// heartbeats over the tunnel, admin calls and sessions, and shows hosts by status — the
// fleet as the admin API shows it.
func TestMetricsSeeTheFleet(t *testing.T) {
	p := startPMD(t, func(c *pmd.Config) { c.MetricsAddr = "127.0.0.1:0" })
	p.enroll("edge-1")
	p.enroll("edge-2")
	p.waitStatus("edge-1", wire.HostOnline)
	p.waitStatus("edge-2", wire.HostOnline)
	if _, err := p.admin().RevokeHost(t.Context(), "edge-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.admin().CreateHostToken(t.Context(), wire.TokenRequest{Name: "edge-3"}); err != nil {
		t.Fatal(err)
	}

	var m map[string]float64
	eventually(t, 10*time.Second, "the revoked host's session to end", func() bool {
		m = scrape(t, p)
		return m["pocketmolt_tunnel_sessions"] == 1 && m[`pocketmolt_tunnel_sessions_total{event="closed"}`] >= 1
	})
	for series, want := range map[string]float64{
		`pocketmolt_hosts{status="online"}`:   1,
		`pocketmolt_hosts{status="revoked"}`:  1,
		`pocketmolt_hosts{status="pending"}`:  1,
		`pocketmolt_hosts{status="offline"}`:  0,
		`pocketmolt_hosts{status="draining"}`: 0,
		`pocketmolt_store_up`:                 1,
		`pocketmolt_http_requests_total{code="200",method="POST",route="POST /v1/enroll",server="agent"}`:             2,
		`pocketmolt_http_requests_total{code="201",method="POST",route="POST /v1/hosts/tokens",server="admin"}`:       3,
		`pocketmolt_http_requests_total{code="200",method="POST",route="POST /v1/hosts/{ref}/revoke",server="admin"}`: 1,
	} {
		got, ok := m[series]
		if !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if got := m[`pocketmolt_tunnel_sessions_total{event="opened"}`]; got < 2 {
		t.Errorf("sessions opened = %v, want ≥ 2", got)
	}
	if got := m[`pocketmolt_http_requests_total{code="200",method="POST",route="POST /v1/heartbeat",server="tunnel"}`]; got < 2 {
		t.Errorf("heartbeats over the tunnel = %v, want ≥ 2", got)
	}
	if m[`pocketmolt_host_capacity_bots{host="edge-1"}`] <= 0 {
		t.Errorf("edge-1 declares no capacity: %v", m[`pocketmolt_host_capacity_bots{host="edge-1"}`])
	}
	if _, ok := m[`pocketmolt_host_bots{host="edge-2"}`]; ok {
		t.Error("a revoked host still has per-host series")
	}
	if m["process_resident_memory_bytes"] <= 0 || m["go_goroutines"] <= 0 {
		t.Error("no process or Go runtime metrics")
	}

	// Without metrics-addr there is no metrics listener at all.
	off := startPMD(t, nil)
	if off.D.MetricsAddr != "" || off.D.Metrics != nil {
		t.Fatalf("metrics on without metrics-addr: %q", off.D.MetricsAddr)
	}
}
