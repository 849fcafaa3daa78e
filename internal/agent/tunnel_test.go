package agent

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/tunnel"
)

// pmd reaches a gateway's WebSocket through the tunnel: the upgrade crosses yamux, the agent's
// proxy and the gateway, and bytes then flow both ways.
func TestGatewayUpgradeThroughTunnel(t *testing.T) {
	f := newBotsFixture(t)
	f.want(testSpec("alpha", 1, true))
	f.m.step(t.Context())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	log := slog.New(slog.DiscardHandler)
	accepted := make(chan *tunnel.Session, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, _ := tunnel.Server(c, log)
		accepted <- s
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	agentSide, err := tunnel.Client(c, log)
	if err != nil {
		t.Fatal(err)
	}
	defer agentSide.Close()
	mux := http.NewServeMux()
	f.m.routes(mux, log)
	go agentSide.Serve(mux, log)
	pmdSide := <-accepted
	defer pmdSide.Close()

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://agent/v1/bots/alpha/gateway/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	resp, err := pmdSide.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("upgraded body %T is not writable", resp.Body)
	}
	for _, msg := range []string{"hello", "again"} {
		if _, err := rw.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		done := make(chan error, 1)
		go func() { _, err := io.ReadFull(rw, buf); done <- err }()
		select {
		case err := <-done:
			if err != nil || string(buf) != msg {
				t.Fatalf("echo = %q, %v", buf, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no echo through the upgraded connection")
		}
	}
}
