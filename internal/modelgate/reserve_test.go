package modelgate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/prices"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func TestReservation(t *testing.T) {
	// Prices per token: 3 in and 15 out for the known model, 1 and 2 for any other.
	tab := prices.Table{
		Models:  map[string]wire.Price{"anthropic/claude-x": {Input: 3_000_000, Output: 15_000_000}, "openai/gpt-x": {Input: 3_000_000, Output: 15_000_000}},
		Default: wire.Price{Input: 1_000_000, Output: 2_000_000},
	}
	for _, c := range []struct {
		name, provider, api, body string
		output                    int64 // the output bound
		known                     bool  // priced as the model, not the default
	}{
		{"messages with max_tokens", "anthropic", apiMessages, `{"model":"claude-x","max_tokens":256,"messages":[]}`, 256, true},
		{"messages without max_tokens", "anthropic", apiMessages, `{"model":"claude-x","messages":[]}`, defaultOutputBound, true},
		{"messages: another API's bound is not its own", "anthropic", apiMessages, `{"model":"claude-x","max_output_tokens":9}`, defaultOutputBound, true},
		{"messages of an unknown model", "anthropic", apiMessages, `{"model":"claude-new","max_tokens":100}`, 100, false},
		{"chat with max_tokens", "openai", apiChat, `{"model":"gpt-x","max_tokens":300,"messages":[]}`, 300, true},
		{"chat with max_completion_tokens", "openai", apiChat, `{"model":"gpt-x","max_completion_tokens":500}`, 500, true},
		{"chat with both: the larger", "openai", apiChat, `{"model":"gpt-x","max_tokens":700,"max_completion_tokens":500}`, 700, true},
		{"chat without a bound", "openai", apiChat, `{"model":"gpt-x","messages":[],"stream":true}`, defaultOutputBound, true},
		{"responses with max_output_tokens", "openai", apiResponses, `{"model":"gpt-x","input":"hi","max_output_tokens":1000}`, 1000, true},
		{"responses: max_tokens is not its bound", "openai", apiResponses, `{"model":"gpt-x","input":"hi","max_tokens":10}`, defaultOutputBound, true},
		{"responses without a bound", "openai", apiResponses, `{"model":"gpt-x","input":"hi"}`, defaultOutputBound, true},
		{"a fractional bound rounds up", "anthropic", apiMessages, `{"model":"claude-x","max_tokens":256.5}`, 257, true},
		{"a bound of the wrong type keeps the model", "anthropic", apiMessages, `{"model":"claude-x","max_tokens":"256"}`, defaultOutputBound, true},
		{"a null bound", "openai", apiChat, `{"model":"gpt-x","max_tokens":null}`, defaultOutputBound, true},
		{"a zero bound", "anthropic", apiMessages, `{"model":"claude-x","max_tokens":0}`, defaultOutputBound, true},
		{"a negative bound", "openai", apiResponses, `{"model":"gpt-x","max_output_tokens":-5}`, defaultOutputBound, true},
		{"not JSON", "anthropic", apiMessages, `max_tokens=5`, defaultOutputBound, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ci := readCallInfo([]byte(c.body))
			if got := ci.outputBound(c.api); got != c.output {
				t.Errorf("output bound %d, want %d", got, c.output)
			}
			in, out := int64(1), int64(2)
			if c.known {
				in, out = 3, 15
			}
			want := int64(len(c.body)+3)/4*in + c.output*out
			if got := ci.reservation(tab, c.provider, c.api, len(c.body)); got != want {
				t.Errorf("reservation %d, want %d", got, want)
			}
		})
	}
	t.Run("a huge bound saturates", func(t *testing.T) {
		ci := readCallInfo([]byte(`{"model":"claude-x","max_tokens":1e300}`))
		if got := ci.outputBound(apiMessages); got != math.MaxInt64 {
			t.Errorf("output bound %d", got)
		}
		if got := ci.reservation(tab, "anthropic", apiMessages, 40); got != math.MaxInt64 {
			t.Errorf("reservation %d, want the most there is", got)
		}
	})
}

// reservations is what botID holds for calls in flight, and its records pending.
func reservations(g *Gate, botID string) (reserved int64, holds, pending int) {
	b := g.bot(botID, false)
	if b == nil {
		return 0, 0, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reserved, b.holds, len(b.pending)
}

// waitReleased waits (10 s at most) until botID holds no reservation.
func waitReleased(t *testing.T, g *Gate, botID string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		reserved, holds, _ := reservations(g, botID)
		if reserved == 0 && holds == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still holds %d in %d reservations", botID, reserved, holds)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// slowProvider answers every call as the fake provider does (no stream), once release is
// closed; it counts the calls that reached it. A caller that goes away ends its call.
type slowProvider struct {
	srv     *httptest.Server
	arrived atomic.Int64
	release chan struct{}
}

func newSlowProvider(t *testing.T) *slowProvider {
	p := &slowProvider{release: make(chan struct{})}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		p.arrived.Add(1)
		select {
		case <-p.release:
		case <-r.Context().Done():
			return
		}
		api := apiMessages
		switch {
		case strings.HasSuffix(r.URL.Path, "/chat/completions"):
			api = apiChat
		case strings.HasSuffix(r.URL.Path, "/responses"):
			api = apiResponses
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, wholeBody(api, true))
	}))
	t.Cleanup(p.srv.Close)
	t.Cleanup(func() {
		select {
		case <-p.release:
		default:
			close(p.release)
		}
	})
	return p
}

// onSlow points bot-a of r at p, with its allowance and prices kept.
func onSlow(r *rig, p *slowProvider, edit func(a *wire.ModelAccess)) {
	a := &wire.ModelAccess{Token: tokenA, Providers: map[string]wire.ProviderAccess{
		wire.ProviderAnthropic: {BaseURL: p.srv.URL + "/anthropic", Key: anthropicKey},
		wire.ProviderOpenAI:    {BaseURL: p.srv.URL + "/openai/v1", Key: openaiKey},
	}}
	edit(a)
	r.g.Set("bot-a", a)
}

// TestCreditsInFlight makes calls at once that the allowance has room for three of: three
// reach the provider, the rest are refused at once, and what was spent is within the
// allowance. Without reservations all ten reached the provider.
func TestCreditsInFlight(t *testing.T) {
	price := wire.Price{Input: 20_000_000, CacheRead: 2_000_000, Output: 25_000_000}
	const calls, fit = 10, 3
	for _, v := range []struct {
		name    string
		price   wire.Price
		bound   int64 // the calls' max_tokens (max_output_tokens)
		perCall int64 // what a call costs
	}{
		// The reservation is the actual cost: the output the call asks for and gets (12
		// tokens), input free. Ten calls would spend 3,000 of 1,199.
		{"reserved as spent", wire.Price{Output: 25_000_000}, 12, 300},
		// The reservation is far above the cost (256 output tokens asked for, 12 answered).
		{"reserved above spent", price, 256, 1000},
	} {
		for _, ac := range apiCases {
			t.Run(v.name+"/"+ac.name, func(t *testing.T) {
				inFlight(t, ac, v.price, v.bound, v.perCall, calls, fit)
			})
		}
	}
	t.Run("not on credits", func(t *testing.T) {
		r := newRig(t, nil)
		p := newSlowProvider(t)
		onSlow(r, p, func(a *wire.ModelAccess) { a.DefaultPrice = price })
		var wg sync.WaitGroup
		for range calls {
			wg.Go(func() {
				if got := r.call(t, t.Context(), apiCases[0].path, tokenA, apiCases[0].body(false)); got.status != 200 {
					t.Errorf("%d %s", got.status, got.body)
				}
			})
		}
		deadline := time.Now().Add(10 * time.Second)
		for p.arrived.Load() < calls && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if reserved, holds, _ := reservations(r.g, "bot-a"); reserved != 0 || holds != 0 {
			t.Errorf("a bot not on credits holds %d in %d reservations", reserved, holds)
		}
		close(p.release)
		wg.Wait()
		if n := p.arrived.Load(); n != calls {
			t.Errorf("%d of %d calls reached the provider", n, calls)
		}
	})
	t.Run("a call larger than what is left, alone, is admitted", func(t *testing.T) {
		// A customer's last credits stay usable: with nothing in flight a call goes while
		// anything is left, though it may cost more (6,960 at most, 1,000 in fact).
		r := newRig(t, func(a *wire.ModelAccess) {
			a.Credits = true
			a.DefaultPrice = price
			a.Allowance = wire.Allowance{Remaining: 500, AsOf: time.Unix(1, 0)}
		})
		if got := r.call(t, t.Context(), apiCases[0].path, tokenA, apiCases[0].body(false)); got.status != 200 {
			t.Errorf("the last call: %d %s", got.status, got.body)
		}
		if got := r.call(t, t.Context(), apiCases[0].path, tokenA, apiCases[0].body(false)); got.status != 400 {
			t.Errorf("once spent: %d %s", got.status, got.body)
		}
	})
}

// TestReservationReleased: every way a call on credits ends gives back what it held, once,
// and a record's cost takes its place.
func TestReservationReleased(t *testing.T) {
	price := wire.Price{Input: 20_000_000, CacheRead: 2_000_000, Output: 25_000_000}
	for _, c := range []struct {
		name   string
		path   string
		stream bool
		mode   string
		setup  func(r *rig)
		recs   int // records written
	}{
		{"answered", "/anthropic/v1/messages", false, "", nil, 1},
		{"answered, streamed", "/openai/v1/responses", true, "", nil, 1},
		{"provider 500", "/openai/v1/chat/completions", false, "500", nil, 1},
		{"cut stream", "/anthropic/v1/messages", true, "cut", nil, 1},
		{"cut answer", "/openai/v1/chat/completions", false, "cut", nil, 1},
		{"sink failure", "/anthropic/v1/messages", false, "", func(r *rig) { r.sink.err = errors.New("disk full") }, 0},
		{"sink failure, streamed", "/openai/v1/chat/completions", true, "", func(r *rig) { r.sink.err = errors.New("disk full") }, 0},
		{"provider unreachable", "/openai/v1/chat/completions", false, "", func(r *rig) {
			dead := httptest.NewServer(http.NotFoundHandler())
			dead.Close()
			a := testAccess(r.p, tokenA, wire.ProviderAnthropic, wire.ProviderOpenAI)
			a.Providers["openai"] = wire.ProviderAccess{BaseURL: dead.URL + "/v1", Key: openaiKey}
			creditsOn(a, price)
			r.g.Set("bot-a", a)
		}, 0},
		{"provider base url not usable", "/anthropic/v1/messages", false, "", func(r *rig) {
			a := testAccess(r.p, tokenA, wire.ProviderAnthropic)
			a.Providers["anthropic"] = wire.ProviderAccess{BaseURL: "ftp://example.com", Key: anthropicKey}
			creditsOn(a, price)
			r.g.Set("bot-a", a)
		}, 0},
		{"refused for its rate after the credits check", "/anthropic/v1/messages", false, "", func(r *rig) {
			a := testAccess(r.p, tokenA, wire.ProviderAnthropic)
			creditsOn(a, price)
			a.Limits.PerDay = 1
			r.g.Set("bot-a", a)
			r.call(t, t.Context(), "/anthropic/v1/messages", tokenA, apiCases[0].body(false))
		}, 1}, // the first call's
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, func(a *wire.ModelAccess) { creditsOn(a, price) })
			if c.setup != nil {
				c.setup(r)
			}
			body := `{"model":"m","max_tokens":256,"messages":[{"role":"user","content":"Say hello"}],"stream":` + fmt.Sprint(c.stream) + `}`
			if strings.HasSuffix(c.path, "/responses") {
				body = `{"model":"m","input":"Say hello","stream":` + fmt.Sprint(c.stream) + `}`
			}
			r.call(t, t.Context(), c.path, tokenA, body, "X-Test-Mode", c.mode)
			waitReleased(t, r.g, "bot-a")
			recs := r.sink.records()
			if len(recs) != c.recs {
				t.Fatalf("%d records, want %d", len(recs), c.recs)
			}
			var want int64
			for _, rec := range recs {
				want += prices.Cost(price, rec.Tokens)
			}
			b := r.g.bot("bot-a", false)
			b.mu.Lock()
			spent := b.pendingSpend()
			b.mu.Unlock()
			if spent != want {
				t.Errorf("pending spend %d, want the records' %d", spent, want)
			}
		})
	}
	t.Run("bot gone mid-stream", func(t *testing.T) {
		r := newRig(t, func(a *wire.ModelAccess) { creditsOn(a, price) })
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		body := apiCases[0].body(true)
		req, _ := http.NewRequestWithContext(ctx, "POST", r.srv.URL+"/anthropic/v1/messages", strings.NewReader(body))
		req.Header.Set("X-Api-Key", tokenA)
		req.Header.Set("X-Test-Mode", "hang")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := resp.Body.Read(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		most := readCallInfo([]byte(body)).reservation(prices.Table{Default: price}, wire.ProviderAnthropic, apiMessages, len(body))
		if reserved, holds, _ := reservations(r.g, "bot-a"); reserved != most || holds != 1 {
			t.Errorf("mid-stream: %d reserved by %d calls, want %d by 1", reserved, holds, most)
		}
		cancel()
		resp.Body.Close()
		<-r.p.canceled
		waitReleased(t, r.g, "bot-a")
		if _, _, pending := reservations(r.g, "bot-a"); pending != 1 {
			t.Errorf("%d records pending, want the cut one", pending)
		}
	})
	t.Run("bot gone before an answer", func(t *testing.T) {
		r := newRig(t, nil)
		p := newSlowProvider(t)
		onSlow(r, p, func(a *wire.ModelAccess) { creditsOn(a, price) })
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			req, _ := http.NewRequestWithContext(ctx, "POST", r.srv.URL+"/anthropic/v1/messages", strings.NewReader(apiCases[0].body(false)))
			req.Header.Set("X-Api-Key", tokenA)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				t.Errorf("answered: %d", resp.StatusCode)
			}
		}()
		for p.arrived.Load() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		if _, holds, _ := reservations(r.g, "bot-a"); holds != 1 {
			t.Errorf("in flight: %d reservations", holds)
		}
		cancel()
		<-done
		waitReleased(t, r.g, "bot-a")
		if n := len(r.sink.records()); n != 0 {
			t.Errorf("%d records", n)
		}
	})
	t.Run("bot removed while its call is in flight", func(t *testing.T) {
		r := newRig(t, nil)
		p := newSlowProvider(t)
		onSlow(r, p, func(a *wire.ModelAccess) { creditsOn(a, price) })
		done := make(chan reply)
		go func() { done <- r.call(t, t.Context(), apiCases[0].path, tokenA, apiCases[0].body(false)) }()
		for p.arrived.Load() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		r.g.Set("bot-a", nil)
		if r.g.bot("bot-a", false) == nil {
			t.Fatal("the bot's state was dropped while a call held a reservation")
		}
		close(p.release)
		if got := <-done; got.status != 200 {
			t.Errorf("%d", got.status)
		}
		waitReleased(t, r.g, "bot-a")
		r.g.Settled(r.sink.records())
		if r.g.bot("bot-a", false) != nil {
			t.Error("the bot's state stayed after its last call was settled")
		}
	})
}

func creditsOn(a *wire.ModelAccess, price wire.Price) {
	a.Credits = true
	a.DefaultPrice = price
	a.Allowance = wire.Allowance{Remaining: 1e12, AsOf: time.Unix(1, 0)}
}

// flakySink fails every third Append.
type flakySink struct {
	memSink
	n atomic.Int64
}

func (s *flakySink) Append(ctx context.Context, rec wire.UsageRecord) error {
	if s.n.Add(1)%3 == 0 {
		return errors.New("disk full")
	}
	return s.memSink.Append(ctx, rec)
}

// TestReservationsUnderFaults runs many calls on credits at once, with the provider failing,
// cutting and hanging, the bot going away, the Sink failing, the allowance changing and
// records settling: none leaves a reservation behind.
func TestReservationsUnderFaults(t *testing.T) {
	p := newProvider(t)
	go func() {
		for range p.canceled { // hung calls report here; nobody else listens
		}
	}()
	sink := &flakySink{}
	g := New(Config{Sink: sink})
	price := wire.Price{Input: 20_000_000, CacheRead: 2_000_000, Output: 25_000_000}
	access := func() *wire.ModelAccess {
		a := testAccess(p, tokenA, wire.ProviderAnthropic, wire.ProviderOpenAI)
		a.Credits = true
		a.DefaultPrice = price
		return a
	}
	g.Set("bot-a", access())
	g.SetAllowance("bot-a", wire.Allowance{Remaining: 200_000, AsOf: time.Unix(1, 0)})
	srv := httptest.NewServer(g.Handler("bot-a"))
	defer srv.Close()

	rnd := rand.New(rand.NewPCG(8, 8))
	modes := []string{"", "", "500", "cut", "nousage", "hang", "gone"}
	const n = 200
	var wg sync.WaitGroup
	var answered, refused atomic.Int64
	for i := range n {
		ac, stream, mode := apiCases[rnd.IntN(3)], rnd.IntN(2) == 0, modes[rnd.IntN(len(modes))]
		wait := time.Duration(rnd.IntN(20)) * time.Millisecond
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if mode == "hang" || mode == "gone" {
				time.AfterFunc(wait, cancel)
			}
			req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+ac.path, strings.NewReader(ac.body(stream)))
			req.Header.Set("X-Api-Key", tokenA)
			req.Header.Set("X-Test-Mode", mode)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			switch resp.StatusCode {
			case 200:
				answered.Add(1)
			case 400, 429:
				refused.Add(1)
			}
		})
		if i%10 == 0 {
			g.Settled(sink.records())
			g.SetAllowance("bot-a", wire.Allowance{Remaining: 200_000 + int64(i)*1000, AsOf: time.Unix(int64(2+i), 0)})
			g.Set("bot-a", access())
		}
	}
	wg.Wait()
	waitReleased(t, g, "bot-a")
	if answered.Load() == 0 || refused.Load() == 0 {
		t.Errorf("%d answered, %d refused: the test wants both", answered.Load(), refused.Load())
	}
	g.Settled(sink.records())
	if _, _, pending := reservations(g, "bot-a"); pending != 0 {
		t.Errorf("%d records pending after all were settled", pending)
	}
}

// inFlight is a case of TestCreditsInFlight: calls calls of ac at once, asking for bound
// output tokens, on an allowance for fit of them and not quite one more; a call costs
// perCall at price.
func inFlight(t *testing.T, ac apiCase, price wire.Price, bound, perCall int64, calls, fit int) {
	r := newRig(t, nil)
	p := newSlowProvider(t)
	body := fmt.Sprintf(`{"model":%q,"max_tokens":%d,"messages":[{"role":"user","content":"Say hello"}]}`, ac.model, bound)
	if ac.api == apiResponses {
		body = fmt.Sprintf(`{"model":%q,"max_output_tokens":%d,"input":"Say hello"}`, ac.model, bound)
	}
	most := readCallInfo([]byte(body)).reservation(prices.Table{Default: price}, ac.provider, ac.api, len(body))
	allowance := int64(fit)*most + most - 1
	onSlow(r, p, func(a *wire.ModelAccess) {
		a.Credits = true
		a.DefaultPrice = price
		a.Allowance = wire.Allowance{Remaining: allowance, AsOf: time.Unix(1, 0)}
	})
	replies := make(chan reply, calls)
	for range calls {
		go func() {
			req, _ := http.NewRequestWithContext(t.Context(), "POST", r.srv.URL+ac.path, strings.NewReader(body))
			req.Header.Set("X-Api-Key", tokenA)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				replies <- reply{readErr: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			replies <- reply{resp.StatusCode, resp.Header, string(b), err}
		}()
	}
	wantShape := `"code":"rate_limit_exceeded"`
	if ac.provider == wire.ProviderAnthropic {
		wantShape = `"type":"rate_limit_error"`
	}
	// Those refused are answered at once; those admitted wait for release.
	timeout := time.After(10 * time.Second)
	answered := 0
refusals:
	for range calls - fit {
		var got reply
		select {
		case got = <-replies:
		case <-timeout:
			t.Errorf("%d calls refused, %d reached the provider; want %d refused", answered, p.arrived.Load(), calls-fit)
			break refusals
		}
		answered++
		if got.status != 429 || !strings.Contains(got.body, wantShape) || got.header.Get("Retry-After") != "5" ||
			!strings.Contains(got.body, "in progress may use up its remaining credits") {
			t.Errorf("refused: %d %v %s, want 429 %s with retry-after 5", got.status, got.readErr, got.body, wantShape)
		}
	}
	if reserved, holds, _ := reservations(r.g, "bot-a"); reserved != int64(fit)*most || holds != fit {
		t.Errorf("in flight: %d reserved by %d calls, want %d by %d", reserved, holds, int64(fit)*most, fit)
	}
	close(p.release)
	for range calls - answered {
		if got := <-replies; got.status != 200 {
			t.Errorf("admitted: %d %v %s", got.status, got.readErr, got.body)
		}
	}
	if n := p.arrived.Load(); n != int64(fit) {
		t.Errorf("%d calls reached the provider, want %d", n, fit)
	}
	var spent int64
	for _, rec := range r.sink.records() {
		spent += prices.Cost(price, rec.Tokens)
	}
	if spent > allowance || spent != int64(fit)*perCall {
		t.Errorf("spent %d of %d, want %d", spent, allowance, int64(fit)*perCall)
	}
	waitReleased(t, r.g, "bot-a")
	want := []wire.UsageRefusal{{BotID: "bot-a", Provider: ac.provider, Reason: wire.RefusedCredits, Count: int64(calls - fit)}}
	if got := r.g.Refusals(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("refusals %+v, want %+v", got, want)
	}
	// With nothing in flight, one more call goes while anything is left.
	got := r.call(t, t.Context(), ac.path, tokenA, body)
	if left := allowance - spent; (left > 0) != (got.status == 200) {
		t.Errorf("after the calls in flight ended, %d left: %d %s", left, got.status, got.body)
	}
}
