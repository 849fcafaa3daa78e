package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/modelgate"
	"github.com/pocketmolt/pocketmolt/internal/runtime"
	"github.com/pocketmolt/pocketmolt/internal/spool"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// modelsRig is a host's model endpoints on loopback: each "bot network" is a 127.0.0.0/8
// address of its own (the gateway) and another for the "container", with a fake provider
// upstream answering in Anthropic's shape.
type modelsRig struct {
	ms       *Models
	gate     *modelgate.Gate
	spool    *spool.Spool
	logs     *lockedWriter
	upstream *httptest.Server
	mu       sync.Mutex
	keys     []string // x-api-key of each call the provider got
}

func newModelsRig(t *testing.T) *modelsRig {
	t.Helper()
	r := &modelsRig{logs: &lockedWriter{}}
	r.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.keys = append(r.keys, req.Header.Get("X-Api-Key"))
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":100,"output_tokens":10,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}`)
	}))
	t.Cleanup(r.upstream.Close)
	sp, err := spool.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	log := slog.New(slog.NewTextHandler(r.logs, nil))
	r.spool = sp
	r.gate = modelgate.New(modelgate.Config{Sink: sp, Log: log})
	r.ms = NewModels(r.gate, sp, log)
	t.Cleanup(r.ms.Close)
	return r
}

// lockedWriter is a log buffer safe to read while the endpoints write to it.
type lockedWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (r *modelsRig) access(token, key string) *wire.ModelAccess {
	return &wire.ModelAccess{
		Token:     token,
		Providers: map[string]wire.ProviderAccess{wire.ProviderAnthropic: {BaseURL: r.upstream.URL, Key: key}},
		Credits:   true,
		Allowance: wire.Allowance{Remaining: 1_000_000, AsOf: time.Now(), Message: "used up"},
		Prices:    map[string]wire.Price{"anthropic/claude-sonnet-4-6": {Input: 3_000_000, Output: 15_000_000}},
	}
}

// modelCall makes one Messages call to the endpoint at ep from the address from, with token.
func modelCall(t *testing.T, ep netip.AddrPort, from netip.Addr, token string) (int, string, error) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: from.AsSlice()}, Timeout: 2 * time.Second}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	req, _ := http.NewRequest(http.MethodPost, "http://"+ep.String()+"/anthropic/v1/messages",
		strings.NewReader(`{"model":"claude-sonnet-4-6","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("x-api-key", token)
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("content-type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// loopbackPair picks a gateway and a container address for test bot network n on
// 127.0.0.0/8.
func loopbackPair(n byte) (gw, ip netip.Addr) {
	return netip.AddrFrom4([4]byte{127, 77, n, 1}), netip.AddrFrom4([4]byte{127, 77, n, 2})
}

func TestModelEndpointServesOnlyItsBot(t *testing.T) {
	r := newModelsRig(t)
	gwA, ipA := loopbackPair(1)
	gwB, ipB := loopbackPair(2)
	r.ms.Sync([]ModelBot{
		{ID: "b-a", Access: r.access("pmm-a", "sk-key-of-a-0123456789"), Gateway: gwA, IP: ipA},
		{ID: "b-b", Access: r.access("pmm-b", "sk-key-of-b-0123456789"), Gateway: gwB, IP: ipB},
	})
	epA, ok := r.ms.Addr("b-a")
	if !ok || epA != netip.AddrPortFrom(gwA, runtime.ModelPort) {
		t.Fatalf("bot a's endpoint = %v %v", epA, ok)
	}
	epB, _ := r.ms.Addr("b-b")

	// Each bot reaches its own endpoint with its own token; the provider gets its key.
	if code, body, err := modelCall(t, epA, ipA, "pmm-a"); err != nil || code != 200 || strings.Contains(body, "sk-key") {
		t.Fatalf("bot a: %d %q %v", code, body, err)
	}
	if code, _, err := modelCall(t, epB, ipB, "pmm-b"); err != nil || code != 200 {
		t.Fatalf("bot b: %d %v", code, err)
	}
	r.mu.Lock()
	keys := strings.Join(r.keys, ",")
	r.mu.Unlock()
	if keys != "sk-key-of-a-0123456789,sk-key-of-b-0123456789" {
		t.Errorf("provider got keys %q", keys)
	}

	// Bot b connecting to bot a's endpoint is closed before a byte is read, with its own
	// token or a's.
	for _, tok := range []string{"pmm-b", "pmm-a"} {
		if code, _, err := modelCall(t, epA, ipB, tok); err == nil {
			t.Errorf("bot b reached bot a's endpoint with %s: %d", tok, code)
		}
	}
	if !strings.Contains(r.logs.String(), "refused a connection from another address") {
		t.Errorf("the refused connection was not logged:\n%s", r.logs)
	}
	// From its own address, another bot's token is refused by the gate.
	if code, body, err := modelCall(t, epA, ipA, "pmm-b"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("bot a with b's token: %d %s %v", code, body, err)
	}
	if strings.Contains(r.logs.String(), "sk-key-of") {
		t.Errorf("a provider key reached the log:\n%s", r.logs)
	}

	// Bot b gone: its listener closes and its token no longer works.
	r.ms.Sync([]ModelBot{{ID: "b-a", Access: r.access("pmm-a", "sk-key-of-a-0123456789"), Gateway: gwA, IP: ipA}})
	if _, ok := r.ms.Addr("b-b"); ok {
		t.Error("bot b's endpoint still listens")
	}
	if _, _, err := modelCall(t, epB, ipB, "pmm-b"); err == nil {
		t.Error("bot b's endpoint still answers")
	}
	// Bot a's container gone (no address): its listener closes too.
	r.ms.Sync([]ModelBot{{ID: "b-a", Access: r.access("pmm-a", "sk-key-of-a-0123456789")}})
	if _, ok := r.ms.Addr("b-a"); ok {
		t.Error("bot a's endpoint listens without a container")
	}
}

func TestModelEndpointRetriesAnAddressNotYetThere(t *testing.T) {
	r := newModelsRig(t)
	gw, ip := loopbackPair(3)
	fails := 2
	r.ms.listen = func(network, addr string) (net.Listener, error) {
		if fails > 0 {
			fails--
			return nil, errors.New("listen tcp " + addr + ": bind: cannot assign requested address")
		}
		return net.Listen(network, addr)
	}
	bot := []ModelBot{{ID: "b-a", Access: r.access("pmm-a", "sk-key-of-a-0123456789"), Gateway: gw, IP: ip}}
	r.ms.Sync(bot)
	r.ms.Sync(bot)
	if _, ok := r.ms.Addr("b-a"); ok {
		t.Fatal("listening although listen failed")
	}
	if n := strings.Count(r.logs.String(), "model endpoint cannot listen yet"); n != 1 {
		t.Errorf("the same failure logged %d times, want once", n)
	}
	r.ms.Sync(bot)
	if _, ok := r.ms.Addr("b-a"); !ok {
		t.Fatal("not listening once the address is there")
	}
}

func TestShipForgetsOnlyWhatPMDCommitted(t *testing.T) {
	r := newModelsRig(t)
	gw, ip := loopbackPair(4)
	acc := r.access("pmm-a", "sk-key-of-a-0123456789")
	r.ms.Sync([]ModelBot{{ID: "b-a", Access: acc, Gateway: gw, IP: ip}})
	ep, _ := r.ms.Addr("b-a")
	for range 3 {
		if code, _, err := modelCall(t, ep, ip, "pmm-a"); err != nil || code != 200 {
			t.Fatalf("call: %d %v", code, err)
		}
	}
	if n := r.spool.Len(); n != 3 {
		t.Fatalf("spool holds %d records, want 3", n)
	}

	var mu sync.Mutex
	var got []wire.UsageRecord
	fail := 2 // pmd away for the first two sends
	send := func(_ context.Context, b wire.UsageBatch) (wire.UsageReply, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail > 0 {
			fail--
			return wire.UsageReply{}, errors.New("pmd away")
		}
		got = append(got, b.Records...)
		// pmd counted them: nothing is left for the bot.
		return wire.UsageReply{Committed: len(b.Records), Allowances: map[string]wire.Allowance{
			"b-a": {Remaining: 0, AsOf: time.Now().Add(time.Minute), Message: "Your included credits are used up"},
		}}, nil
	}
	r.ms.retry = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.ms.Ship(ctx, send) }()
	deadline := time.Now().Add(10 * time.Second)
	for r.spool.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || r.spool.Len() != 0 {
		t.Fatalf("pmd got %d records, spool holds %d", len(got), r.spool.Len())
	}
	for _, rec := range got {
		if rec.BotID != "b-a" || rec.Tokens.Input != 100 || rec.Tokens.Output != 10 || rec.Outcome != wire.OutcomeOK {
			t.Errorf("record = %+v", rec)
		}
	}
	// The allowance pmd answered with is the gate's now: the next call is refused, with the
	// customer's message.
	code, body, err := modelCall(t, ep, ip, "pmm-a")
	if err != nil || code != http.StatusBadRequest || !strings.Contains(body, "Your included credits are used up") {
		t.Errorf("after the allowance ran out: %d %s %v", code, body, err)
	}
	// The desired set's older allowance does not undo it.
	r.ms.Sync([]ModelBot{{ID: "b-a", Access: acc, Gateway: gw, IP: ip}})
	if code, _, _ := modelCall(t, ep, ip, "pmm-a"); code != http.StatusBadRequest {
		t.Errorf("an older allowance replaced a newer one: %d", code)
	}
}

// TestShipStaysUnderTheTunnelRate: a backlog goes in full batches, and no two sends come
// closer than a third of the shipping interval, so a busy host never opens streams fast
// enough for pmd to cut its session.
func TestShipStaysUnderTheTunnelRate(t *testing.T) {
	r := newModelsRig(t)
	const n = 2500
	for i := range n {
		rec := wire.UsageRecord{ID: fmt.Sprintf("%032x", i+1), BotID: "b-a", Provider: wire.ProviderAnthropic, Model: "m", API: "messages",
			Status: 200, Outcome: wire.OutcomeOK, Tokens: wire.Tokens{Input: 1}, Time: time.Now()}
		if err := r.spool.Append(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
	}
	r.ms.every = 50 * time.Millisecond
	var mu sync.Mutex
	var at []time.Time
	var sizes []int
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.ms.Ship(ctx, func(_ context.Context, b wire.UsageBatch) (wire.UsageReply, error) {
			mu.Lock()
			defer mu.Unlock()
			at, sizes = append(at, time.Now()), append(sizes, len(b.Records))
			return wire.UsageReply{Committed: len(b.Records)}, nil
		})
	}()
	eventually(t, 10*time.Second, func() bool { return r.spool.Len() == 0 })
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) != 3 || sizes[0] != wire.MaxUsageBatch || sizes[1] != wire.MaxUsageBatch || sizes[2] != n-2*wire.MaxUsageBatch {
		t.Fatalf("batches of %v, want two full ones and the rest", sizes)
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < r.ms.every/3 {
			t.Errorf("send %d came %s after the one before, under %s", i, gap, r.ms.every/3)
		}
	}
}

func eventually(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
