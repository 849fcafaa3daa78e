package e2e_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/apiclient/apitest"
	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/pmctl"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/pmd"
	"github.com/pocketmolt/pocketmolt/internal/tunnel"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// fakeAgent is a hostile host: enrolled like any other, with a real certificate and a real
// TLS + yamux tunnel to pmd, but every word it says is the test's. It heartbeats whatever
// report the test gives it and answers pmd's calls with the test's handler.
type fakeAgent struct {
	t      *testing.T
	p      *testPMD
	HostID string
	sess   *tunnel.Session

	mu       sync.Mutex
	hb       wire.Heartbeat
	lastCode int
	beats    int // heartbeats pmd answered 200
}

// enrollFake enrolls a host called name by hand, reporting facts (nil: none, as an older
// agent does), connects its tunnel, serves h on it (beside a PUT /v1/bots that takes any set),
// and heartbeats every 100 ms until the test ends.
func (p *testPMD) enrollFake(name string, facts *wire.HostFacts, h http.Handler) *fakeAgent {
	t := p.t
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "pmagent")
	if err != nil {
		t.Fatal(err)
	}
	req := map[string]any{"token": p.token(name), "csr": string(csr)} // wire.EnrollRequest
	if facts != nil {
		req["facts"] = facts
	}
	body, _ := json.Marshal(req)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: p.tlsClient(nil, wire.ProtoEnroll)}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post("https://"+p.D.AgentAddr+"/v1/enroll", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("enroll %s: %v", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("enroll %s: %v", name, wire.DecodeError(resp))
	}
	var er wire.EnrollResponse
	if err := json.NewDecoder(resp.Body).Decode(&er); err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.MarshalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair([]byte(er.Cert), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", p.D.AgentAddr, p.tlsClient(&cert, wire.ProtoTunnel))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	sess, err := tunnel.Client(c, log)
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeAgent{t: t, p: p, HostID: er.HostID, sess: sess}
	if facts != nil {
		a.hb.Facts = *facts
	}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/bots", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the desired set: a hostile host runs nothing
		w.WriteHeader(http.StatusNoContent)
	})
	if h != nil {
		mux.Handle("/", h)
	}
	served := make(chan struct{})
	go func() { defer close(served); sess.Serve(mux, log) }()
	ctx, cancel := context.WithCancel(context.Background())
	beaten := make(chan struct{})
	go func() {
		defer close(beaten)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			a.beat(ctx)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-beaten
		sess.Close()
		<-served
	})
	return a
}

// beat sends the current report as a heartbeat and keeps pmd's answer.
func (a *fakeAgent) beat(ctx context.Context) {
	a.mu.Lock()
	hb := a.hb
	a.mu.Unlock()
	hb.Sent, hb.Observed = time.Now(), true
	code, _ := a.post(ctx, "/v1/heartbeat", hb)
	a.mu.Lock()
	a.lastCode = code
	if code == http.StatusOK {
		a.beats++
	}
	a.mu.Unlock()
}

// beatsAccepted counts the heartbeats pmd answered 200.
func (a *fakeAgent) beatsAccepted() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.beats
}

// report sets what the agent's heartbeats say from now on.
func (a *fakeAgent) report(f func(*wire.Heartbeat)) {
	a.mu.Lock()
	f(&a.hb)
	a.mu.Unlock()
}

// heartbeatCode is pmd's answer to the agent's last heartbeat.
func (a *fakeAgent) heartbeatCode() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastCode
}

// post sends v to pmd over the tunnel and returns the status and, for an error, its body.
func (a *fakeAgent) post(ctx context.Context, path string, v any) (int, wire.Error) {
	body, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://pmd"+path, bytes.NewReader(body))
	if err != nil {
		return 0, wire.Error{}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.sess.HTTPClient().Do(req)
	if err != nil {
		return 0, wire.Error{Message: err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, wire.Error{}
	}
	return resp.StatusCode, *wire.DecodeError(resp)
}

// events posts events as the agent does when things happen.
func (a *fakeAgent) events(ev wire.Events) (int, wire.Error) {
	a.t.Helper()
	return a.post(a.t.Context(), "/v1/events", ev)
}

// pmctlConfig writes a pmctl config for pmd's admin API with the admin certificate init made.
func (p *testPMD) pmctlConfig() string {
	p.t.Helper()
	cfg, err := ctlconfig.Load(filepath.Join(p.cfg.DataDir, pmd.CtlConfigFile))
	if err != nil {
		p.t.Fatal(err)
	}
	cc, err := cfg.Current()
	if err != nil {
		p.t.Fatal(err)
	}
	cc.Server = p.D.AdminAddr
	return apitest.WriteConfig(p.t, *cc)
}

// ctlResult is what one pmctl run printed.
type ctlResult struct {
	code        int
	out, errOut string
}

// ctlRun runs pmctl with args against config, with stdout and stderr not terminals unless
// tty (then both are, and stdin too).
func ctlRun(ctx context.Context, config string, tty bool, out io.Writer, args ...string) ctlResult {
	ios, _, stdout, stderr := iostreams.Test()
	ios.IsTerminal, ios.CanPrompt = tty, tty
	if out != nil {
		ios.Out = io.MultiWriter(stdout, out)
	}
	f := cmdutil.NewFactory(ios, func(k string) string { return map[string]string{"PMCTL_CONFIG": config}[k] })
	code := pmctl.Run(ctx, f, args)
	return ctlResult{code: code, out: stdout.String(), errOut: stderr.String()}
}
