package apiclient_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/apiclient/apitest"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func fakeAPI() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/hosts", func(w http.ResponseWriter, r *http.Request) {
		wire.WriteJSON(w, 200, []wire.Host{{ID: "h1", Name: "edge-1", Status: wire.HostOnline}})
	})
	mux.HandleFunc("GET /v1/hosts/{ref}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("ref") == "a/b" {
			wire.WriteJSON(w, 200, wire.Host{ID: "h2", Name: "a/b"})
			return
		}
		wire.WriteError(w, wire.Errorf(wire.CodeNotFound, "host %q not found", r.PathValue("ref")))
	})
	mux.HandleFunc("POST /v1/hosts/tokens", func(w http.ResponseWriter, r *http.Request) {
		var req wire.TokenRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			wire.WriteError(w, wire.Errorf(wire.CodeInvalidArgument, "bad body"))
			return
		}
		wire.WriteJSON(w, 201, wire.TokenResponse{Token: "tok-" + req.Name, HostID: "h3"})
	})
	mux.HandleFunc("DELETE /v1/hosts/{ref}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	mux.HandleFunc("GET /v1/certs", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("null")) })
	mux.HandleFunc("GET /v1/audit", func(w http.ResponseWriter, r *http.Request) {
		wire.WriteError(w, wire.Errorf(wire.CodeUnauthenticated, "who are you"))
	})
	mux.HandleFunc("POST /v1/certs/{serial}/revoke", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusBadGateway)
	})
	return mux
}

func TestClient(t *testing.T) {
	srv := apitest.NewServer(t, fakeAPI())
	c, err := apiclient.New(&srv.Context)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	hosts, err := c.ListHosts(ctx)
	if err != nil || len(hosts) != 1 || hosts[0].Name != "edge-1" {
		t.Fatalf("ListHosts = %v, %v", hosts, err)
	}
	h, err := c.GetHost(ctx, "a/b")
	if err != nil || h.ID != "h2" {
		t.Fatalf("GetHost(a/b) = %v, %v", h, err)
	}
	tok, err := c.CreateHostToken(ctx, wire.TokenRequest{Name: "edge-3", TTL: wire.Duration(time.Minute)})
	if err != nil || tok.Token != "tok-edge-3" {
		t.Fatalf("CreateHostToken = %v, %v", tok, err)
	}
	if err := c.RemoveHost(ctx, "edge-1"); err != nil {
		t.Fatalf("RemoveHost: %v", err)
	}
	certs, err := c.ListCerts(ctx)
	if err != nil || certs == nil || len(certs) != 0 {
		t.Fatalf("ListCerts on null = %#v, %v; want empty non-nil", certs, err)
	}

	want := []apitest.Request{
		{Method: "GET", Path: "/v1/hosts"},
		{Method: "GET", Path: "/v1/hosts/a%2Fb"},
		{Method: "POST", Path: "/v1/hosts/tokens", Body: `{"name":"edge-3","ttl":"1m0s"}`},
		{Method: "DELETE", Path: "/v1/hosts/edge-1"},
		{Method: "GET", Path: "/v1/certs"},
	}
	got := srv.Requests()
	if len(got) != len(want) {
		t.Fatalf("requests = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestClientErrors(t *testing.T) {
	srv := apitest.NewServer(t, fakeAPI())
	c, err := apiclient.New(&srv.Context)
	if err != nil {
		t.Fatal(err)
	}
	foreignCtx := srv.ForeignContext(t)
	foreign, err := apiclient.New(&foreignCtx)
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()

	tests := []struct {
		name     string
		call     func() error
		code     string // wire code, "" for a transport error
		status   int
		auth     bool
		canceled bool
	}{
		{name: "not found", call: func() error { _, err := c.GetHost(t.Context(), "nope"); return err }, code: wire.CodeNotFound, status: 404},
		{name: "unauthenticated", call: func() error { _, err := c.ListAudit(t.Context(), 3); return err }, code: wire.CodeUnauthenticated, status: 401, auth: true},
		{name: "not json", call: func() error { _, err := c.RevokeCert(t.Context(), "01"); return err }, code: wire.CodeInternal, status: 502},
		{name: "certificate rejected", call: func() error { _, err := foreign.ListHosts(t.Context()); return err }, auth: true},
		{name: "cancelled", call: func() error { _, err := c.ListHosts(cancelled); return err }, canceled: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("no error")
			}
			var we *wire.Error
			if isWire := errors.As(err, &we); isWire != (tt.code != "") {
				t.Fatalf("err = %v (%T), want wire error %q", err, err, tt.code)
			}
			if we != nil && (we.Code != tt.code || we.Status != tt.status) {
				t.Errorf("err = %q %d, want %q %d", we.Code, we.Status, tt.code, tt.status)
			}
			if got := apiclient.IsAuth(err); got != tt.auth {
				t.Errorf("IsAuth(%v) = %v, want %v", err, got, tt.auth)
			}
			if got := errors.Is(err, context.Canceled); got != tt.canceled {
				t.Errorf("errors.Is(%v, Canceled) = %v", err, got)
			}
		})
	}
}

func TestCertRejectedError(t *testing.T) {
	srv := apitest.NewServer(t, fakeAPI())
	cc := srv.ForeignContext(t)
	c, err := apiclient.New(&cc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListHosts(t.Context())
	var cr *apiclient.CertRejectedError
	// Go's client offers no certificate the server's CA list does not cover, so the server
	// answers "certificate required"; a known-CA certificate that fails verification (revoked,
	// expired) gets "bad certificate". Both are rejections.
	if !errors.As(err, &cr) || cr.Alert != "certificate required" {
		t.Fatalf("err = %v, want CertRejectedError with certificate required", err)
	}
}

func TestNewRefusesBadServer(t *testing.T) {
	srv := apitest.NewServer(t, fakeAPI())
	for _, s := range []string{"http://127.0.0.1:1", "127.0.0.1:1/path"} {
		cc := srv.Context
		cc.Server = s
		if _, err := apiclient.New(&cc); err == nil {
			t.Errorf("New with server %q: no error", s)
		}
	}
}

func TestRevokedCertIsAuth(t *testing.T) {
	srv := apitest.NewServer(t, fakeAPI(), func(c *tls.Config) {
		c.VerifyPeerCertificate = func([][]byte, [][]*x509.Certificate) error {
			return errors.New("certificate revoked")
		}
	})
	c, err := apiclient.New(&srv.Context)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListHosts(t.Context())
	var cr *apiclient.CertRejectedError
	if !errors.As(err, &cr) || cr.Alert != "bad certificate" || !apiclient.IsAuth(err) {
		t.Fatalf("err = %v, want CertRejectedError with bad certificate", err)
	}
}
