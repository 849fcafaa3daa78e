package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/runtime"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Gate is the model endpoint's handler side: it knows each bot's access, swaps in the key,
// forwards and meters (modelgate.Gate).
type Gate interface {
	Set(botID string, acc *wire.ModelAccess)
	SetAllowance(botID string, a wire.Allowance)
	Settled(recs []wire.UsageRecord)
	Refusals() []wire.UsageRefusal
	Handler(botID string) http.Handler
}

// Spool holds metered calls until pmd has committed them (spool.Spool).
type Spool interface {
	Batch(max int) []wire.UsageRecord
	Ack(ids []string) error
	Notify() <-chan struct{}
}

// Models serves each bot its model endpoint and ships what it meters to pmd. Each bot gets a
// listener of its own on its network's gateway address (where runtime.ModelHost points in its
// container), which answers only that bot's container address: no other bot, and nothing
// beyond the host, can reach it. It is safe for concurrent use.
type Models struct {
	gate  Gate
	spool Spool
	log   *slog.Logger
	// listen opens a bot's listener; net.Listen, or a stand-in in tests.
	listen func(network, addr string) (net.Listener, error)
	// retry is how long after a failed send the next one goes; every the least time between
	// two sends, so records gather into batches and the sends stay far below the tunnel's
	// stream rate (tunnel.DefaultLimits), which a busy host would otherwise pass.
	retry, every time.Duration

	mu    sync.Mutex
	eps   map[string]*endpoint // by bot id
	known map[string]bool      // bots the gate was given access for
}

// endpoint is one bot's listener.
type endpoint struct {
	addr   netip.AddrPort
	peer   netip.Addr
	srv    *http.Server
	failed string // why it could not listen, logged once
}

// ModelBot is one bot as Sync sees it: its access (nil: no model calls) and, while its
// container exists, the addresses of its network.
type ModelBot struct {
	ID      string
	Access  *wire.ModelAccess
	Gateway netip.Addr // the host's address on the bot's network; invalid without a container
	IP      netip.Addr // the container's address there
}

// shipBatch is how many records go to pmd in one request, and shipEvery the least time
// between two requests: at most 5 streams a second, a quarter of what the tunnel allows an
// agent. A backlog (after pmd was away) goes in full batches a third of that apart: at most
// 15 streams and 15,000 records a second, still under the tunnel's 20.
const (
	shipBatch = wire.MaxUsageBatch
	shipEvery = 200 * time.Millisecond
)

// NewModels returns the model endpoints of a host, metering into sp through g.
func NewModels(g Gate, sp Spool, log *slog.Logger) *Models {
	return &Models{gate: g, spool: sp, log: log, listen: net.Listen, retry: 2 * time.Second, every: shipEvery, eps: map[string]*endpoint{}, known: map[string]bool{}}
}

// Sync makes the endpoints match bots: every bot's access is given to the gate (a bot missing
// from bots loses it), and each bot with a container address gets its listener; the
// listeners of bots gone or moved are closed.
func (ms *Models) Sync(bots []ModelBot) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	want := map[string]bool{}
	for _, b := range bots {
		want[b.ID] = true
		ms.gate.Set(b.ID, b.Access)
		if b.Access == nil || !b.Gateway.IsValid() {
			ms.closeLocked(b.ID)
			continue
		}
		addr := netip.AddrPortFrom(b.Gateway, runtime.ModelPort)
		if ep := ms.eps[b.ID]; ep != nil {
			if ep.addr == addr && ep.peer == b.IP && ep.srv != nil {
				continue
			}
			if ep.srv != nil || ep.addr != addr {
				ms.closeLocked(b.ID)
			}
		}
		ms.openLocked(b.ID, addr, b.IP)
	}
	for id := range ms.eps {
		if !want[id] {
			ms.closeLocked(id)
		}
	}
	for id := range ms.known {
		if !want[id] {
			ms.gate.Set(id, nil)
			delete(ms.known, id)
		}
	}
	for id := range want {
		ms.known[id] = true
	}
}

func (ms *Models) openLocked(id string, addr netip.AddrPort, peer netip.Addr) {
	ep := ms.eps[id]
	if ep == nil {
		ep = &endpoint{}
		ms.eps[id] = ep
	}
	ep.addr, ep.peer = addr, peer
	l, err := ms.listen("tcp", addr.String())
	if err != nil {
		// The bridge may not carry its address yet; the next pass tries again.
		if msg := err.Error(); ep.failed != msg {
			ep.failed = msg
			ms.log.Warn("model endpoint cannot listen yet", "bot_id", id, "addr", addr.String(), "error", msg)
		}
		return
	}
	ep.failed = ""
	log := ms.log.With("bot_id", id)
	ep.srv = &http.Server{
		Handler:           ms.gate.Handler(id),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func(srv *http.Server) {
		if err := srv.Serve(&peerListener{Listener: l, peer: peer, log: log}); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("model endpoint stopped", "error", err.Error())
		}
	}(ep.srv)
	log.Info("model endpoint listening", "addr", addr.String(), "peer", peer.String())
}

func (ms *Models) closeLocked(id string) {
	ep := ms.eps[id]
	if ep == nil {
		return
	}
	if ep.srv != nil {
		_ = ep.srv.Close()
		ms.log.Info("model endpoint closed", "bot_id", id, "addr", ep.addr.String())
	}
	delete(ms.eps, id)
}

// Close closes every listener.
func (ms *Models) Close() {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for id := range ms.eps {
		ms.closeLocked(id)
	}
}

// Addr is where bot id's endpoint listens, and whether it does.
func (ms *Models) Addr(id string) (netip.AddrPort, bool) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ep := ms.eps[id]
	if ep == nil || ep.srv == nil {
		return netip.AddrPort{}, false
	}
	return ep.addr, true
}

// peerListener accepts only connections from one address: the bot's container. Anything
// else that reaches the bot's gateway address (another bot the firewall let through on the
// endpoint port, a neighbour on the host's network) is closed before a byte is read.
type peerListener struct {
	net.Listener
	peer netip.Addr
	log  *slog.Logger

	mu     sync.Mutex
	warned time.Time
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		from, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		if !l.peer.IsValid() || from.Addr().Unmap() == l.peer.Unmap() {
			return c, nil
		}
		c.Close()
		l.mu.Lock()
		if time.Since(l.warned) > time.Minute {
			l.warned = time.Now()
			l.log.Warn("model endpoint refused a connection from another address", "from", from.Addr().String(), "want", l.peer.String())
		}
		l.mu.Unlock()
	}
}

// Ship sends what the spool holds to pmd, batch by batch, until ctx ends: each batch is
// forgotten only once pmd has committed it, and the allowances pmd answers with are the
// gate's from then on. send is one POST /v1/usage.
func (ms *Models) Ship(ctx context.Context, send func(ctx context.Context, b wire.UsageBatch) (wire.UsageReply, error)) {
	tick := time.NewTicker(30 * time.Second) // refusals are counted even when nothing is spooled
	defer tick.Stop()
	var refusals []wire.UsageRefusal // counted by the gate, not yet taken by pmd
	for {
		recs := ms.spool.Batch(shipBatch)
		refusals = addRefusals(refusals, ms.gate.Refusals())
		if len(recs) > 0 || len(refusals) > 0 {
			sent := time.Now()
			reply, err := send(ctx, wire.UsageBatch{Records: recs, Refusals: refusals})
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				ms.log.Warn("ship usage", "records", len(recs), "error", err.Error(), "retry_in", ms.retry.String())
				select {
				case <-ctx.Done():
					return
				case <-time.After(ms.retry):
				}
				continue
			}
			refusals = nil
			ids := make([]string, len(recs))
			for i, r := range recs {
				ids[i] = r.ID
			}
			if err := ms.spool.Ack(ids); err != nil {
				ms.log.Error("forget shipped usage", "records", len(recs), "error", err.Error())
			}
			ms.gate.Settled(recs)
			for id, a := range reply.Allowances {
				ms.gate.SetAllowance(id, a)
			}
			gap := ms.every
			if len(recs) == shipBatch {
				gap /= 3
			}
			select { // let the next records gather
			case <-ctx.Done():
				return
			case <-time.After(gap - time.Since(sent)):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-ms.spool.Notify():
		case <-tick.C:
		}
	}
}

// addRefusals adds the counts of more to those of held, refusal by refusal.
func addRefusals(held, more []wire.UsageRefusal) []wire.UsageRefusal {
	for _, m := range more {
		i := slices.IndexFunc(held, func(h wire.UsageRefusal) bool {
			return h.BotID == m.BotID && h.Provider == m.Provider && h.Reason == m.Reason
		})
		if i < 0 {
			held = append(held, m)
			continue
		}
		held[i].Count += m.Count
	}
	return held
}
