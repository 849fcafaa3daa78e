package bots_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/bots"
	"github.com/pocketmolt/pocketmolt/internal/modelaccess"
	"github.com/pocketmolt/pocketmolt/internal/secret"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/store/storetest"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// The service's tests run on both databases, with the real store; only the fleet — which
// hosts are online, and the tunnel to them — is a fake of the service's own Fleet interface.

type backend struct {
	name string
	url  func(tb testing.TB) string
}

func backends() []backend {
	return []backend{
		{"sqlite", func(tb testing.TB) string { return "sqlite:" + filepath.Join(tb.TempDir(), "pm.db") }},
		{"postgres", func(tb testing.TB) string { return storetest.PostgresURL(tb) }},
	}
}

// eachBackend runs fn on a fresh database of each backend; url opens more stores on it, as
// more pmds would.
func eachBackend(t *testing.T, fn func(t *testing.T, url string)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b.url(t))
		})
	}
}

func openStore(t testing.TB, url string) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// fakeFleet says which hosts are online; none is connected, so syncs wait for a connection.
type fakeFleet struct {
	mu     sync.Mutex
	online map[string]bool
}

func (f *fakeFleet) setOnline(id string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.online[id] = on
}

func (f *fakeFleet) Status(h store.Host) string {
	switch {
	case h.RevokedAt != nil:
		return wire.HostRevoked
	case h.EnrolledAt == nil:
		return wire.HostPending
	case h.Draining:
		return wire.HostDraining
	case f.Reachable(h.ID):
		return wire.HostOnline
	}
	return wire.HostOffline
}

func (f *fakeFleet) Reachable(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.online[id]
}

func (f *fakeFleet) Client(id string) (*http.Client, error) {
	return nil, wire.Errorf(wire.CodeUnavailable, "host %s is not connected", id)
}

var _ bots.Fleet = (*fakeFleet)(nil)

type rig struct {
	t   testing.TB
	st  *store.Store
	fl  *fakeFleet
	svc *bots.Service
	now time.Time
}

var keyring = func() *secret.Keyring {
	k, err := secret.NewKey("k1")
	if err != nil {
		panic(err)
	}
	r, err := secret.NewKeyring(k)
	if err != nil {
		panic(err)
	}
	return r
}()

// newRig is one pmd's bots service on the database at url.
func newRig(t testing.TB, url string) *rig {
	r := &rig{t: t, st: openStore(t, url), fl: &fakeFleet{online: map[string]bool{}}, now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		r.now = r.now.Add(time.Second) // every bot is younger than the one before
		return r.now
	}
	models, err := modelaccess.New(modelaccess.Config{
		Providers: map[string]modelaccess.Upstream{
			wire.ProviderAnthropic: {BaseURL: modelaccess.DefaultAnthropicBaseURL, Key: platformKey},
			wire.ProviderOpenAI:    {BaseURL: modelaccess.DefaultOpenAIBaseURL}, // no platform key
		},
		Allowance: func(_ context.Context, user string) (wire.Allowance, error) {
			return wire.Allowance{Remaining: 5_000_000, Message: "used up: " + user}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.svc = bots.New(r.st, r.fl, keyring, bots.Config{Image: "pocketmolt/standin-gateway:dev", Now: clock, Models: models}, slog.New(slog.DiscardHandler))
	t.Cleanup(r.svc.Wait)
	return r
}

// addHost records an enrolled host that declares room for bots bots and mem bytes, and
// sets it online.
func (r *rig) addHost(name string, bots int, mem int64, dedicatedTo string) store.Host {
	r.t.Helper()
	facts, _ := json.Marshal(wire.HostFacts{Capacity: wire.Capacity{Bots: bots, MemoryBytes: mem}})
	now := r.now
	h := store.Host{ID: "h-" + name, Name: name, CreatedAt: now, EnrolledAt: &now, Facts: facts, MemoryBytes: 64 << 30, DedicatedBot: dedicatedTo}
	if err := r.st.CreateHost(r.t.Context(), h); err != nil {
		r.t.Fatal(err)
	}
	r.fl.setOnline(h.ID, true)
	return h
}

const (
	platformKey = "sk-ant-platform-0123456789abcdef"
	apiKey      = "sk-ant-test-0123456789abcdef"
	apiKey2     = "sk-ant-test-fedcba9876543210"
	telegram    = "123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQr"
)

func customerBot(name, customer string) bots.NewBot {
	return bots.NewBot{
		Name: name, Owner: bots.Customer(customer), Model: "anthropic/claude-sonnet-4-6", APIKey: apiKey,
		TelegramToken: telegram, Placement: bots.PlacementShared,
		Resources: wire.Resources{MemoryBytes: 2 << 30, CPUs: 1, PIDs: 256},
	}
}

func (r *rig) create(nb bots.NewBot) wire.Bot {
	r.t.Helper()
	b, err := r.svc.Create(r.t.Context(), "test", nb)
	if err != nil {
		r.t.Fatalf("create %s: %v", nb.Name, err)
	}
	return b
}

func (r *rig) get(ref string) wire.Bot {
	r.t.Helper()
	b, err := r.svc.Get(r.t.Context(), ref)
	if err != nil {
		r.t.Fatalf("get %s: %v", ref, err)
	}
	return b
}

func (r *rig) place() {
	r.t.Helper()
	if err := r.svc.PlaceWaiting(r.t.Context()); err != nil {
		r.t.Fatalf("PlaceWaiting: %v", err)
	}
}

// audits counts the audit entries of an action.
func (r *rig) audits(action string) []store.AuditEntry {
	r.t.Helper()
	es, err := r.st.ListAudit(r.t.Context(), 1000)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []store.AuditEntry
	for _, e := range es {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

func TestWaitingBotIsPlacedWhenAHostHasRoom(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		r := newRig(t, url)
		old := r.create(customerBot("old", "u-1"))
		if old.Status != wire.BotWaiting || old.HostID != "" || old.Waiting != "no host has room for a bot with 2GiB of memory" ||
			old.Owner != "customer:u-1" || old.Placement != bots.PlacementShared {
			t.Fatalf("created with no host: %+v", old)
		}
		young := r.create(customerBot("young", "u-2"))
		// A full host and an offline one do not help.
		r.addHost("full", 1, 4<<30, "")
		r.create(bots.NewBot{Name: "filler", Owner: bots.Operator("alice"), Host: "full", Model: "anthropic/claude-sonnet-4-6", APIKey: apiKey, Placement: bots.PlacementShared})
		off := r.addHost("off", 4, 16<<30, "")
		r.fl.setOnline(off.ID, false)
		r.place()
		if b := r.get("old"); b.Status != wire.BotWaiting || b.Waiting == "" {
			t.Fatalf("placed with no room: %+v", b)
		}

		// Room for one bot: the oldest goes first.
		room := r.addHost("room", 1, 8<<30, "")
		r.place()
		if b := r.get("old"); b.HostName != "room" || b.Status != wire.BotPending || b.Waiting != "" {
			t.Fatalf("the oldest waiting bot: %+v, want it placed on room", b)
		}
		if b := r.get("young"); b.HostID != "" || b.Status != wire.BotWaiting {
			t.Fatalf("the younger bot took a full host: %+v", b)
		}
		set, err := r.svc.Desired(t.Context(), room.ID)
		if err != nil || len(set.Bots) != 1 || set.Bots[0].ID != old.ID {
			t.Fatalf("the host's set: %+v %v", set, err)
		}
		// The offline host comes online.
		r.fl.setOnline(off.ID, true)
		r.place()
		if b := r.get(young.ID); b.HostName != "off" {
			t.Fatalf("young after the host came online: %+v", b)
		}
		if n := len(r.audits("bot.place")); n != 2 {
			t.Fatalf("%d bot.place entries, want 2", n)
		}
		for _, e := range r.audits("bot.create") {
			if strings.Contains(e.Detail, apiKey) || strings.Contains(e.Detail, telegram) {
				t.Fatalf("a secret in the audit log: %s", e.Detail)
			}
		}
	})
}

func TestOperatorCreateWithoutRoomWaitsButAPinnedHostMustHaveIt(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		r := newRig(t, url)
		r.addHost("small", 1, 1<<30, "")
		nb := customerBot("alice", "")
		nb.Owner = bots.Operator("root")
		b := r.create(nb)
		if b.Status != wire.BotWaiting || b.Owner != "operator:root" {
			t.Fatalf("operator's bot with no room: %+v", b)
		}
		nb.Name, nb.Host = "bob", "small"
		if _, err := r.svc.Create(t.Context(), "test", nb); wire.CodeOf(err) != wire.CodeConflict || !strings.Contains(err.Error(), "full") {
			t.Fatalf("pinned to a full host: %v", err)
		}
		nb.Host = "nowhere"
		if _, err := r.svc.Create(t.Context(), "test", nb); wire.CodeOf(err) != wire.CodeNotFound {
			t.Fatalf("pinned to an unknown host: %v", err)
		}
		// A waiting bot can be deleted at once: nothing of it is on any host.
		del, err := r.svc.Delete(t.Context(), "test", "alice", false)
		if err != nil || del.Status != wire.BotDeleting {
			t.Fatalf("delete a waiting bot: %+v %v", del, err)
		}
		if _, err := r.svc.Get(t.Context(), "alice"); wire.CodeOf(err) != wire.CodeNotFound {
			t.Fatalf("after delete: %v", err)
		}
		// What needs its host says it has none.
		r.create(customerBot("carol", "u-3"))
		if _, err := r.svc.Restart(t.Context(), "test", "carol"); wire.CodeOf(err) != wire.CodeConflict || !strings.Contains(err.Error(), "no host yet") {
			t.Fatalf("restart a waiting bot: %v", err)
		}
	})
}

func TestDedicatedBotGoesOnlyToItsHost(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		r := newRig(t, url)
		r.addHost("shared", 10, 32<<30, "")
		nb := customerBot("vip", "u-1")
		nb.Placement = bots.PlacementDedicated
		vip := r.create(nb)
		if vip.Status != wire.BotWaiting || vip.Waiting != "waiting for a dedicated host" || vip.Placement != bots.PlacementDedicated {
			t.Fatalf("dedicated bot with a shared host free: %+v", vip)
		}
		nb.Name, nb.Host = "pinned", "shared"
		if _, err := r.svc.Create(t.Context(), "test", nb); wire.CodeOf(err) != wire.CodeInvalidArgument {
			t.Fatalf("dedicated bot naming a host: %v", err)
		}

		// Its host enrolls, but is not online yet.
		ded := r.addHost("ded", 2, 8<<30, vip.ID)
		r.fl.setOnline(ded.ID, false)
		r.place()
		if b := r.get("vip"); b.HostID != "" || b.Waiting != "waiting for a dedicated host: its host ded is offline" {
			t.Fatalf("with its host offline: %+v", b)
		}
		// The shared host is full now; a shared bot waits rather than take the dedicated one.
		if err := r.st.SetHostCapacity(t.Context(), "h-shared", 0, 1<<30); err != nil {
			t.Fatal(err)
		}
		r.create(customerBot("shared-bot", "u-2"))
		r.fl.setOnline(ded.ID, true)
		r.place()
		if b := r.get("vip"); b.HostName != "ded" || b.Waiting != "" {
			t.Fatalf("with its host online: %+v", b)
		}
		if b := r.get("shared-bot"); b.HostID != "" {
			t.Fatalf("a shared bot went to %s, a dedicated host", b.HostName)
		}
		sb := customerBot("pinned-shared", "u-3")
		sb.Host = "ded"
		if _, err := r.svc.Create(t.Context(), "test", sb); wire.CodeOf(err) != wire.CodeConflict || !strings.Contains(err.Error(), "dedicated") {
			t.Fatalf("a shared bot pinned to a dedicated host: %v", err)
		}
	})
}

// TestConcurrentPlacersPlaceOnce: two pmds on one database place waiting bots at once; each
// bot is placed once and the host is never filled past its capacity.
func TestConcurrentPlacersPlaceOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		a, b := newRig(t, url), newRig(t, url)
		for i := range 8 {
			a.create(customerBot(fmt.Sprintf("bot-%d", i), fmt.Sprintf("u-%d", i)))
		}
		h := a.addHost("edge", 3, 32<<30, "")
		b.fl.setOnline(h.ID, true)
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := range 20 {
			r := a
			if i%2 == 1 {
				r = b
			}
			wg.Go(func() { errs <- r.svc.PlaceWaiting(t.Context()) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("PlaceWaiting: %v", err)
			}
		}
		on, err := a.st.ListBotsByHost(t.Context(), h.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(on) != 3 {
			t.Fatalf("%d bots on a host with room for 3", len(on))
		}
		if n := len(a.audits("bot.place")); n != 3 {
			t.Fatalf("%d bot.place entries, want 3", n)
		}
		for i, bt := range on {
			if want := fmt.Sprintf("bot-%d", i); bt.Name != want {
				t.Fatalf("placed %s, want the oldest: %s", bt.Name, want)
			}
		}
	})
}

// TestCreateTxIsIdempotent: a creation retried with its key — after a commit, or at the same
// time from another pmd — finds the bot it made.
func TestCreateTxIsIdempotent(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		a, b := newRig(t, url), newRig(t, url)
		ctx := t.Context()
		nb := customerBot("sub-1", "u-1")
		nb.IdempotencyKey = "stripe-sub:sub_1"
		createIn := func(r *rig, nb bots.NewBot) (store.Bot, error) {
			var out store.Bot
			err := r.st.InTx(ctx, func(tx *store.Store) error {
				var err error
				out, err = r.svc.CreateTx(ctx, tx, "stripe", nb)
				return err
			})
			if err == nil {
				r.svc.Created(out)
			}
			return out, err
		}
		first, err := createIn(a, nb)
		if err != nil {
			t.Fatal(err)
		}
		again, err := createIn(b, nb)
		if err != nil || again.ID != first.ID {
			t.Fatalf("the same key again: %s %v, want %s", again.ID, err, first.ID)
		}
		renamed := nb
		renamed.Name = "sub-1-again" // a retry never makes a second bot, whatever it is called
		if again, err = createIn(a, renamed); err != nil || again.ID != first.ID {
			t.Fatalf("the same key with another name: %s %v", again.ID, err)
		}
		stolen := nb
		stolen.Owner = bots.Customer("u-2")
		if _, err := createIn(a, stolen); wire.CodeOf(err) != wire.CodeConflict {
			t.Fatalf("the key with another owner: %v", err)
		}

		// A caller's transaction that fails leaves no bot behind.
		rolled := customerBot("sub-2", "u-2")
		rolled.IdempotencyKey = "stripe-sub:sub_2"
		boom := errors.New("the webhook's own write failed")
		err = a.st.InTx(ctx, func(tx *store.Store) error {
			if _, err := a.svc.CreateTx(ctx, tx, "stripe", rolled); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if _, err := a.st.GetBotByIdempotencyKey(ctx, "stripe-sub:sub_2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a rolled back creation left a bot: %v", err)
		}

		// Two pmds at once with one key: one bot, and both get it.
		nb3 := customerBot("sub-3", "u-3")
		nb3.IdempotencyKey = "stripe-sub:sub_3"
		var wg sync.WaitGroup
		ids := make(chan string, 8)
		for i := range 8 {
			r := a
			if i%2 == 1 {
				r = b
			}
			wg.Go(func() {
				got, err := createIn(r, nb3)
				if err != nil {
					t.Errorf("concurrent create: %v", err)
				}
				ids <- got.ID
			})
		}
		wg.Wait()
		close(ids)
		seen := map[string]bool{}
		for id := range ids {
			seen[id] = true
		}
		mine, err := a.svc.ListByOwner(ctx, store.OwnerCustomer, "u-3")
		if err != nil || len(mine) != 1 || len(seen) != 1 || !seen[mine[0].ID] {
			t.Fatalf("concurrent creations made %d bots (%v), returned %v", len(mine), err, seen)
		}
		if n := len(a.audits("bot.create")); n != 2 {
			t.Fatalf("%d bot.create entries, want 2 (sub-1 and sub-3)", n)
		}
	})
}

func TestNewBotIsValidated(t *testing.T) {
	r := newRig(t, "sqlite:"+filepath.Join(t.TempDir(), "pm.db"))
	for _, tc := range []struct {
		name string
		mut  func(*bots.NewBot)
		want string
	}{
		{"owner kind unknown", func(nb *bots.NewBot) { nb.Owner.Kind = "robot" }, "owner kind"},
		{"customer without id", func(nb *bots.NewBot) { nb.Owner = bots.Customer("") }, "customer's id"},
		{"owner id with a newline", func(nb *bots.NewBot) { nb.Owner = bots.Customer("u\n1") }, "customer's id"},
		{"key too long", func(nb *bots.NewBot) { nb.IdempotencyKey = strings.Repeat("k", 201) }, "idempotency key"},
		{"key with control characters", func(nb *bots.NewBot) { nb.IdempotencyKey = "a\x1bb" }, "idempotency key"},
		{"placement unknown", func(nb *bots.NewBot) { nb.Placement = "anywhere" }, "placement"},
		{"no placement", func(nb *bots.NewBot) { nb.Placement = "" }, "placement"},
		{"bad name", func(nb *bots.NewBot) { nb.Name = "Bad_Name" }, "bot name"},
		{"bad key", func(nb *bots.NewBot) { nb.APIKey = " " }, "api key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nb := customerBot("ok", "u-1")
			tc.mut(&nb)
			_, err := r.svc.Create(t.Context(), "test", nb)
			if wire.CodeOf(err) != wire.CodeInvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want invalid_argument mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), apiKey) {
				t.Fatal("the api key in an error")
			}
		})
	}
	if bs, _ := r.svc.List(t.Context()); len(bs) != 0 {
		t.Fatalf("%d bots after bad requests", len(bs))
	}
}

func TestListByOwner(t *testing.T) {
	r := newRig(t, "sqlite:"+filepath.Join(t.TempDir(), "pm.db"))
	r.create(customerBot("b", "u-1"))
	r.create(customerBot("a", "u-1"))
	r.create(customerBot("c", "u-2"))
	op := customerBot("d", "")
	op.Owner = bots.Operator("u-1")
	r.create(op)
	got, err := r.svc.ListByOwner(t.Context(), store.OwnerCustomer, "u-1")
	if err != nil || len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" {
		t.Fatalf("ListByOwner(customer u-1) = %+v, %v", got, err)
	}
	got, err = r.svc.ListByOwner(t.Context(), store.OwnerOperator, "u-1")
	if err != nil || len(got) != 1 || got[0].Name != "d" || got[0].Owner != "operator:u-1" {
		t.Fatalf("ListByOwner(operator u-1) = %+v, %v", got, err)
	}
}

// TestRunPlacesWhenWoken: the placer's loop places a waiting bot as soon as the fleet says a
// host changed, without waiting for its next round.
func TestRunPlacesWhenWoken(t *testing.T) {
	url := "sqlite:" + filepath.Join(t.TempDir(), "pm.db")
	r := newRig(t, url)
	st := r.st
	fl := r.fl
	svc := bots.New(st, fl, keyring, bots.Config{Image: "pocketmolt/standin-gateway:dev", PlaceInterval: time.Hour}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	r.create(customerBot("alice", "u-1"))
	h := r.addHost("edge", 2, 8<<30, "")
	svc.HostChanged(h.ID)
	deadline := time.Now().Add(10 * time.Second)
	for r.get("alice").HostID != h.ID {
		if time.Now().After(deadline) {
			t.Fatal("the woken placer did not place the bot")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v at the end of its context, want nil", err)
	}
	svc.Wait()
}

// BenchmarkPlaceWaiting is one round of the placer: with nothing waiting (what each round
// costs a fleet with room) and with 1000 bots waiting on 50 full hosts (what each round costs
// while the fleet has no room; no reason changes, so nothing is written).
func BenchmarkPlaceWaiting(b *testing.B) {
	for _, be := range backends() {
		for _, waiting := range []int{0, 1000} {
			b.Run(fmt.Sprintf("%s/waiting=%d", be.name, waiting), func(b *testing.B) {
				r := newRig(b, be.url(b))
				for i := range 50 {
					r.addHost(fmt.Sprintf("h%d", i), 1, 2<<30, "")
					nb := customerBot(fmt.Sprintf("placed-%d", i), "u")
					nb.Host = fmt.Sprintf("h%d", i)
					r.create(nb)
				}
				for i := range waiting {
					r.create(customerBot(fmt.Sprintf("w-%d", i), "u"))
				}
				r.place() // the reasons settle
				b.ResetTimer()
				for b.Loop() {
					if err := r.svc.PlaceWaiting(b.Context()); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
