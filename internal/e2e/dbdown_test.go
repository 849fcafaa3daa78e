package e2e_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/pmd"
	"github.com/pocketmolt/pocketmolt/internal/store/storetest"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// cutter is a TCP proxy that can cut every connection through it and refuse new ones, as a
// network partition between pmd and its database would.
type cutter struct {
	ln       net.Listener
	upstream string

	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func newCutter(t *testing.T, upstream string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, upstream: upstream}
	t.Cleanup(func() { ln.Close(); c.cut() })
	go c.serve()
	return c
}

func (c *cutter) serve() {
	for {
		down, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		if c.down {
			c.mu.Unlock()
			down.Close()
			continue
		}
		up, err := net.Dial("tcp", c.upstream)
		if err != nil {
			c.mu.Unlock()
			down.Close()
			continue
		}
		c.conns = append(c.conns, down, up)
		c.mu.Unlock()
		go func() { io.Copy(up, down); up.Close() }()
		go func() { io.Copy(down, up); down.Close() }()
	}
}

// cut closes every connection and refuses new ones until restore.
func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = true
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

func (c *cutter) restore() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = false
}

// TestDatabaseOutage cuts pmd off from PostgreSQL while a host is connected and a bot is
// recorded: pmd keeps running and says the database is unavailable (public /healthz 503,
// store_up 0, admin calls 503 "unavailable" with no detail), and once the database is back the
// host is online again, every record is there, and writes work — with no restart of anything.
func TestDatabaseOutage(t *testing.T) {
	pg, err := url.Parse(storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutter(t, pg.Host)
	pg.Host = proxy.ln.Addr().String()
	p := startPMD(t, func(c *pmd.Config) { c.Database = pg.String(); c.MetricsAddr = "127.0.0.1:0" })
	a := p.enroll("edge-1")
	p.waitStatus("edge-1", wire.HostOnline)
	if _, err := p.admin().CreateBot(t.Context(), botRequest("alice", "edge-1")); err != nil {
		t.Fatal(err)
	}
	// edge-2's certificate is revoked before the outage: the handshake cannot check it while
	// the database is out of reach, and it must still never get a session.
	revoked := p.enroll("edge-2")
	p.waitStatus("edge-2", wire.HostOnline)
	h2, err := p.admin().GetHost(t.Context(), "edge-2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.admin().RevokeCert(t.Context(), h2.CertSerial); err != nil {
		t.Fatal(err)
	}
	noSession := func(when string) {
		t.Helper()
		if _, err := p.D.Fleet.Client(revoked.hostID()); err == nil {
			t.Fatalf("a host with a revoked certificate has a session %s", when)
		}
	}
	eventually(t, 5*time.Second, "edge-2's session to end", func() bool {
		_, err := p.D.Fleet.Client(revoked.hostID())
		return err != nil
	})
	attempts := sessionCount(revoked)

	proxy.cut()
	health := func() (int, wire.Error) {
		resp, err := http.Get("http://" + p.D.PublicAddr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e wire.Error
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e
	}
	eventually(t, 15*time.Second, "/healthz to report the database down", func() bool {
		code, e := health()
		return code == http.StatusServiceUnavailable && e.Code == wire.CodeUnavailable
	})
	if m := scrape(t, p); m["pocketmolt_store_up"] != 0 {
		t.Errorf("store_up = %v during the outage, want 0", m["pocketmolt_store_up"])
	}
	_, err = p.admin().ListHosts(t.Context())
	if code := wire.CodeOf(err); code != wire.CodeUnavailable {
		t.Fatalf("hosts list during the outage: %v (code %q), want %s", err, code, wire.CodeUnavailable)
	}
	if contains(err.Error(), pg.Host) || contains(err.Error(), "dial") {
		t.Errorf("the admin error shows internals: %v", err)
	}

	// Long enough for the agents' heartbeats and edge-2's retries to meet the outage.
	eventually(t, 15*time.Second, "edge-2 to retry during the outage", func() bool {
		noSession("during the outage")
		return sessionCount(revoked) >= attempts+2
	})
	if !contains(p.Logs.String(), "tunnel refused") {
		t.Error("pmd did not log refusing edge-2's tunnel during the outage")
	}
	proxy.restore()

	eventually(t, 30*time.Second, "/healthz to recover", func() bool {
		code, _ := health()
		return code == http.StatusOK
	})
	p.waitStatus("edge-1", wire.HostOnline)
	if b := p.bot("alice"); b.HostName != "edge-1" {
		t.Fatalf("bot after the outage: %+v", b)
	}
	if _, err := p.admin().CreateBot(t.Context(), botRequest("bob", "edge-1")); err != nil {
		t.Fatalf("write after the outage: %v", err)
	}
	eventually(t, 10*time.Second, "the agent to be connected", func() bool {
		_, err := p.D.Fleet.Client(a.hostID())
		return err == nil
	})
	attempts = sessionCount(revoked)
	eventually(t, 15*time.Second, "edge-2 to retry after the outage", func() bool {
		noSession("after the outage")
		return sessionCount(revoked) >= attempts+2
	})
	if m := scrape(t, p); m["pocketmolt_store_up"] != 1 {
		t.Errorf("store_up = %v after the outage, want 1", m["pocketmolt_store_up"])
	}
}
