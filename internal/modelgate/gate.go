// Package modelgate is the agent's model endpoint: the HTTP handler each bot reaches its
// model providers through. It checks the bot's model token, swaps in the real provider key,
// forwards the call, reads the provider's own usage from the answer, hands a usage record to
// a durable Sink before the answer is finished, and refuses calls itself (in the provider's
// error shape) for a wrong token, a provider the bot may not call, call limits, and a spent
// allowance of credits.
package modelgate

import (
	"cmp"
	"context"
	"crypto/sha256"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/prices"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Sink receives usage records; Append returns once the record is durable (fsynced). It must
// be safe for concurrent use.
type Sink interface {
	Append(ctx context.Context, rec wire.UsageRecord) error
}

// Config is what a Gate needs.
type Config struct {
	Sink Sink
	// Client calls the providers; nil is a transport with dial, TLS and response header
	// timeouts and no overall timeout (streams are long). The Gate never follows redirects,
	// whatever Client says.
	Client *http.Client
	// Now is the clock of records and call limits; nil is time.Now.
	Now func() time.Time
	// Log gets the gate's events; nil discards them. Keys and tokens are never logged.
	Log *slog.Logger
}

// Gate is the model endpoint of one agent, for all the bots of its host. It is safe for
// concurrent use: calls run while Set and SetAllowance change what bots may do.
type Gate struct {
	sink   Sink
	client *http.Client
	now    func() time.Time
	log    *slog.Logger

	mu      sync.RWMutex
	bots    map[string]*bot
	byToken map[[sha256.Size]byte]string // hash of a token → its bot, to name a borrower

	rmu      sync.Mutex
	refusals map[refusalKey]int64
}

type refusalKey struct{ bot, provider, reason string }

// bot is the gate's state of one bot. Its access is replaced whole by Set; the rest lives
// across Sets.
type bot struct {
	mu        sync.Mutex
	access    *access // nil: no calls
	allowance wire.Allowance
	pending   map[string]pendingCall // records metered and not yet settled, by id
	spent     int64                  // estimated cost of pending, when spentOK
	spentOK   bool
	// reserved is what the calls on credits in flight may cost at most, held from their
	// admission until their record is pending (or none is written); holds counts them.
	reserved int64
	holds    int
	minute   window
	day      dayCount
}

// pendingCall is what the allowance needs of a record not yet settled.
type pendingCall struct {
	provider, model string
	tokens          wire.Tokens
}

// access is a bot's wire.ModelAccess as the gate uses it. It is never changed once made.
type access struct {
	token     []byte
	tokenHash [sha256.Size]byte
	providers map[string]upstream
	credits   bool
	limits    wire.CallLimits
	table     prices.Table
}

// upstream is one provider of a bot: its base URL (no trailing slash) and key.
type upstream struct {
	base  string
	key   string
	byok  bool
	valid bool // base is an http(s) URL; otherwise calls get 502
}

// New returns a Gate that knows no bots yet.
func New(cfg Config) *Gate {
	g := &Gate{
		sink:     cfg.Sink,
		now:      cfg.Now,
		log:      cfg.Log,
		bots:     map[string]*bot{},
		byToken:  map[[sha256.Size]byte]string{},
		refusals: map[refusalKey]int64{},
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	var c http.Client
	if cfg.Client != nil {
		c = *cfg.Client
	} else {
		c.Transport = DefaultTransport()
	}
	// A redirect would carry the key (x-api-key is not an Authorization header) wherever it
	// points; the bot gets the 3xx instead.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	g.client = &c
	return g
}

// DefaultTransport is the transport of a Gate without a Client: proxies from the
// environment, dial, TLS and response header timeouts (10 s, 10 s, 10 min: a long answer
// that does not stream takes minutes to begin), no compression (usage is read from the
// answer), and enough idle connections for many bots' calls to the same provider.
func DefaultTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 10 * time.Minute,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256,
		DisableCompression:    true,
	}
}

// Set adds or replaces botID's access; nil removes it, so that its calls are refused as
// having a wrong token. Calls in flight finish with the access they began with. An
// allowance in acc replaces the held one only when it is newer (see SetAllowance); what the
// bot spent and has not been settled stays counted.
func (g *Gate) Set(botID string, acc *wire.ModelAccess) {
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.bots[botID]
	if b != nil {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.access != nil && g.byToken[b.access.tokenHash] == botID {
			delete(g.byToken, b.access.tokenHash)
		}
	}
	if acc == nil {
		if b != nil {
			b.access = nil
			b.spentOK = false
			if b.idle() {
				delete(g.bots, botID)
			}
		}
		return
	}
	a := g.newAccess(botID, acc)
	if b == nil {
		b = &bot{pending: map[string]pendingCall{}}
		g.bots[botID] = b
	}
	b.access = a
	b.spentOK = false // prices may have changed
	b.takeAllowance(acc.Allowance)
	if a.token != nil {
		g.byToken[a.tokenHash] = botID
	}
}

func (g *Gate) newAccess(botID string, acc *wire.ModelAccess) *access {
	a := &access{
		providers: make(map[string]upstream, len(acc.Providers)),
		credits:   acc.Credits,
		limits:    acc.Limits,
		table:     prices.Table{Models: make(map[string]wire.Price, len(acc.Prices)), Default: acc.DefaultPrice},
	}
	if acc.Token != "" {
		a.token = []byte(acc.Token)
		a.tokenHash = sha256.Sum256(a.token)
	}
	for k, v := range acc.Prices {
		a.table.Models[k] = v
	}
	for name, p := range acc.Providers {
		up := upstream{base: strings.TrimSuffix(p.BaseURL, "/"), key: p.Key, byok: p.BYOK}
		u, err := url.Parse(up.base)
		up.valid = err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
			u.RawQuery == "" && u.Fragment == "" && u.User == nil
		if !up.valid {
			g.log.Warn("model provider base url not usable", "bot_id", botID, "provider", name)
		}
		a.providers[name] = up
	}
	return a
}

// SetAllowance replaces botID's allowance when a.AsOf is newer than the held one's (pmd's
// answers may arrive out of order); it is kept for a bot the gate does not know yet.
func (g *Gate) SetAllowance(botID string, a wire.Allowance) {
	b := g.bot(botID, true)
	b.mu.Lock()
	b.takeAllowance(a)
	b.mu.Unlock()
}

func (b *bot) takeAllowance(a wire.Allowance) {
	if a.AsOf.After(b.allowance.AsOf) || b.allowance == (wire.Allowance{}) {
		b.allowance = a
	}
}

// bot returns botID's state, made when create says so (else nil when there is none).
func (g *Gate) bot(botID string, create bool) *bot {
	g.mu.RLock()
	b := g.bots[botID]
	g.mu.RUnlock()
	if b != nil || !create {
		return b
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if b = g.bots[botID]; b == nil {
		b = &bot{pending: map[string]pendingCall{}}
		g.bots[botID] = b
	}
	return b
}

// Pending counts records metered but not yet committed by pmd (found in the spool at
// start, say) against their bots' allowances, at the estimated cost of the bot's price
// table. Records already pending are counted once.
func (g *Gate) Pending(recs []wire.UsageRecord) {
	for _, r := range recs {
		b := g.bot(r.BotID, true)
		b.mu.Lock()
		b.addPending(r)
		b.mu.Unlock()
	}
}

// addPending needs b.mu.
func (b *bot) addPending(r wire.UsageRecord) {
	if _, ok := b.pending[r.ID]; ok {
		return
	}
	pc := pendingCall{provider: r.Provider, model: r.Model, tokens: r.Tokens}
	b.pending[r.ID] = pc
	if b.spentOK {
		b.spent = satAdd(b.spent, b.cost(pc))
	}
}

// Settled takes records pmd has committed out of the pending spend: pmd's next allowance
// includes them.
func (g *Gate) Settled(recs []wire.UsageRecord) {
	for _, r := range recs {
		b := g.bot(r.BotID, false)
		if b == nil {
			continue
		}
		b.mu.Lock()
		if _, ok := b.pending[r.ID]; ok {
			delete(b.pending, r.ID)
			b.spentOK = false
		}
		gone := b.idle()
		b.mu.Unlock()
		if gone {
			g.drop(r.BotID, b)
		}
	}
}

// idle reports whether b is of no more use: no access, nothing pending, no call holding a
// reservation; needs b.mu.
func (b *bot) idle() bool { return b.access == nil && len(b.pending) == 0 && b.holds == 0 }

// drop forgets botID's state b if it is still idle and still botID's. Needs nothing held.
func (g *Gate) drop(botID string, b *bot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.bots[botID] != b {
		return
	}
	b.mu.Lock()
	if b.idle() {
		delete(g.bots, botID)
	}
	b.mu.Unlock()
}

// cost is pc's estimated cost at the bot's prices; needs b.mu.
func (b *bot) cost(pc pendingCall) int64 {
	var t prices.Table
	if b.access != nil {
		t = b.access.table
	}
	p, _ := t.Lookup(pc.provider, pc.model)
	return prices.Cost(p, pc.tokens)
}

// pendingSpend is the estimated cost of the bot's records not yet settled; needs b.mu.
func (b *bot) pendingSpend() int64 {
	if !b.spentOK {
		b.spent = 0
		for _, pc := range b.pending {
			b.spent = satAdd(b.spent, b.cost(pc))
		}
		b.spentOK = true
	}
	return b.spent
}

// satAdd is a+b for b >= 0, at most maxInt64.
func satAdd(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return 1<<63 - 1
}

// satSub is a-b for b >= 0, at least minInt64.
func satSub(a, b int64) int64 {
	if d := a - b; d <= a {
		return d
	}
	return -1 << 63
}

// Refusals returns the counts of calls the gate refused itself since the last call, and
// resets them.
func (g *Gate) Refusals() []wire.UsageRefusal {
	g.rmu.Lock()
	m := g.refusals
	g.refusals = map[refusalKey]int64{}
	g.rmu.Unlock()
	out := make([]wire.UsageRefusal, 0, len(m))
	for k, n := range m {
		out = append(out, wire.UsageRefusal{BotID: k.bot, Provider: k.provider, Reason: k.reason, Count: n})
	}
	slices.SortFunc(out, func(a, b wire.UsageRefusal) int {
		return cmp.Or(cmp.Compare(a.BotID, b.BotID), cmp.Compare(a.Provider, b.Provider), cmp.Compare(a.Reason, b.Reason))
	})
	return out
}

func (g *Gate) refused(botID, provider, reason string) {
	g.rmu.Lock()
	g.refusals[refusalKey{botID, provider, reason}]++
	g.rmu.Unlock()
}

// Handler is the endpoint for botID, the one bot whose network the listener is on: it
// serves that bot's calls with whatever access Set last gave it.
func (g *Gate) Handler(botID string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.serve(w, r, botID) })
}
