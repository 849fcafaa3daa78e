package store

import (
	"database/sql"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
)

// TestBotOwners is the conformance suite of what migration 00006 added: owners, idempotency
// keys, placement, bots that wait for a host, and tokens and hosts dedicated to one bot.
func TestBotOwners(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			open := func(t *testing.T) *Store { return openURL(t, b.newURL(t)) }
			t.Run("owners keys and waiting", func(t *testing.T) { testBotOwners(t, open(t)) })
			t.Run("dedicated tokens and hosts", func(t *testing.T) { testDedicated(t, open(t)) })
			t.Run("placement lock", func(t *testing.T) { testPlacementLock(t, open(t)) })
		})
	}
}

func ownedBot(id string, created time.Duration) Bot {
	return Bot{
		ID: id, Name: "name-" + id, Owner: Owner{Kind: OwnerCustomer, ID: "u-" + id}, Placement: PlacementShared,
		Spec: []byte(`{}`), Secrets: "v1:k1:" + id, SpecVersion: 1, Desired: DesiredRunning,
		CreatedAt: ts(created), UpdatedAt: ts(created),
	}
}

func testBotOwners(t *testing.T, s *Store) {
	ctx := t.Context()
	mustOK(t, s.CreateHost(ctx, host("h1")))

	// A customer's bot with a key, waiting for room.
	w1 := ownedBot("w1", 2*time.Second)
	w1.IdempotencyKey, w1.Placement, w1.Waiting = "sub:1", PlacementDedicated, "waiting for a dedicated host"
	mustOK(t, s.CreateBot(ctx, w1))
	got, err := s.GetBot(ctx, "w1")
	mustOK(t, err)
	mustEqual(t, "GetBot of a waiting bot", got, w1)
	got, err = s.GetBotByIdempotencyKey(ctx, "sub:1")
	mustOK(t, err)
	mustEqual(t, "GetBotByIdempotencyKey", got, w1)
	if _, err := s.GetBotByIdempotencyKey(ctx, "sub:2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown key: %v, want ErrNotFound", err)
	}
	again := ownedBot("w1b", 3*time.Second)
	again.IdempotencyKey = "sub:1"
	if err := s.CreateBot(ctx, again); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second bot with the key: %v, want ErrConflict", err)
	}

	// Two older waiting bots, named against their age, and bots with no key: keys are unique
	// only when given.
	w2 := ownedBot("w2", time.Second)
	w2.Name, w2.Waiting = "zz-oldest", "no host has room for a bot with 2GiB of memory"
	w3 := ownedBot("w3", time.Second) // same instant: the id breaks the tie
	w3.Name, w3.Owner = "aa-second", Owner{Kind: OwnerCustomer, ID: "u-w2"}
	mustOK(t, s.CreateBot(ctx, w3))
	mustOK(t, s.CreateBot(ctx, w2))
	// An operator's placed bot; zero owner kind and placement take the defaults.
	p1 := ownedBot("p1", 0)
	p1.HostID, p1.Owner, p1.Placement = "h1", Owner{ID: "alice"}, ""
	mustOK(t, s.CreateBot(ctx, p1))
	got, err = s.GetBot(ctx, "p1")
	mustOK(t, err)
	if got.Owner != (Owner{Kind: OwnerOperator, ID: "alice"}) || got.Placement != PlacementShared || got.HostID != "h1" || got.IdempotencyKey != "" {
		t.Fatalf("defaults: %+v", got)
	}

	bad := ownedBot("bad", 0)
	bad.Owner.Kind = "robot"
	if err := s.CreateBot(ctx, bad); err == nil {
		t.Fatal("an owner kind other than operator or customer was accepted")
	}
	bad = ownedBot("bad", 0)
	bad.Placement = "anywhere"
	if err := s.CreateBot(ctx, bad); err == nil {
		t.Fatal("a placement other than shared or dedicated was accepted")
	}
	bad = ownedBot("bad", 0)
	bad.HostID, bad.Waiting = "h1", "still waiting"
	if err := s.CreateBot(ctx, bad); err == nil {
		t.Fatal("a placed bot with a reason to wait was accepted")
	}

	ids := func(bs []Bot) string {
		var out []string
		for _, b := range bs {
			out = append(out, b.ID)
		}
		return strings.Join(out, ",")
	}
	waiting, err := s.ListWaitingBots(ctx)
	mustOK(t, err)
	if got := ids(waiting); got != "w2,w3,w1" {
		t.Fatalf("ListWaitingBots = %s, want the oldest first: w2,w3,w1", got)
	}
	byOwner, err := s.ListBotsByOwner(ctx, Owner{Kind: OwnerCustomer, ID: "u-w2"})
	mustOK(t, err)
	if got := ids(byOwner); got != "w3,w2" {
		t.Fatalf("ListBotsByOwner(customer u-w2) = %s, want w3,w2 (by name)", got)
	}
	byOwner, err = s.ListBotsByOwner(ctx, Owner{Kind: OwnerOperator, ID: "u-w2"})
	mustOK(t, err)
	if len(byOwner) != 0 {
		t.Fatalf("an operator with a customer's id owns %s", ids(byOwner))
	}
	onNoHost, err := s.ListBotsByHost(ctx, "")
	mustOK(t, err)
	if len(onNoHost) != 0 {
		t.Fatalf("ListBotsByHost(\"\") = %s, want none", ids(onNoHost))
	}

	// Why a bot waits can change; a placed bot has no reason.
	mustOK(t, s.SetBotWaiting(ctx, "w3", "no host is online", ts(time.Minute)))
	got, err = s.GetBot(ctx, "w3")
	mustOK(t, err)
	if got.Waiting != "no host is online" || !got.UpdatedAt.Equal(ts(time.Minute)) {
		t.Fatalf("after SetBotWaiting: %+v", got)
	}
	if err := s.SetBotWaiting(ctx, "p1", "x", ts(0)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetBotWaiting on a placed bot: %v, want ErrNotFound", err)
	}

	mustOK(t, s.PlaceBot(ctx, "w2", "h1", ts(2*time.Minute)))
	got, err = s.GetBot(ctx, "w2")
	mustOK(t, err)
	if got.HostID != "h1" || got.Waiting != "" || !got.UpdatedAt.Equal(ts(2*time.Minute)) {
		t.Fatalf("after PlaceBot: %+v", got)
	}
	if err := s.PlaceBot(ctx, "w2", "h1", ts(0)); !errors.Is(err, ErrConflict) {
		t.Fatalf("placing a placed bot: %v, want ErrConflict", err)
	}
	if err := s.PlaceBot(ctx, "nobody", "h1", ts(0)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("placing an unknown bot: %v, want ErrNotFound", err)
	}
	if err := s.PlaceBot(ctx, "w3", "nowhere", ts(0)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("placing on an unknown host: %v, want ErrNotFound", err)
	}
	onH1, err := s.ListBotsByHost(ctx, "h1")
	mustOK(t, err)
	if got := ids(onH1); got != "p1,w2" {
		t.Fatalf("on h1: %s", got)
	}

	// A bot being deleted no longer waits.
	mustOK(t, s.SetBotDesired(ctx, "w3", DesiredDeleted, false, ts(3*time.Minute)))
	waiting, err = s.ListWaitingBots(ctx)
	mustOK(t, err)
	if got := ids(waiting); got != "w1" {
		t.Fatalf("waiting after a delete: %s, want w1", got)
	}

	v, err := s.ReplaceBotSpec(ctx, "w1", []byte(`{"model":"m2"}`), "v1:k1:new", ts(4*time.Minute))
	mustOK(t, err)
	got, err = s.GetBot(ctx, "w1")
	mustOK(t, err)
	if v != 2 || got.SpecVersion != 2 || string(got.Spec) != `{"model":"m2"}` || got.Secrets != "v1:k1:new" || !got.UpdatedAt.Equal(ts(4*time.Minute)) {
		t.Fatalf("after ReplaceBotSpec (version %d): %+v", v, got)
	}
	if _, err := s.ReplaceBotSpec(ctx, "nobody", []byte(`{}`), "x", ts(0)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReplaceBotSpec of an unknown bot: %v, want ErrNotFound", err)
	}
}

func testDedicated(t *testing.T, s *Store) {
	ctx := t.Context()
	mustOK(t, s.CreateHost(ctx, host("shared")))
	mustOK(t, s.CreateHost(ctx, host("ded")))
	b := ownedBot("b1", 0)
	b.Placement, b.Waiting = PlacementDedicated, "waiting for a dedicated host"
	mustOK(t, s.CreateBot(ctx, b))

	tok := token("t1", "ded")
	tok.ForBot = "b1"
	mustOK(t, s.CreateToken(ctx, tok))
	orphan := token("t2", "ded")
	orphan.ForBot = "nobody"
	if err := s.CreateToken(ctx, orphan); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a token for an unknown bot: %v, want ErrNotFound", err)
	}
	mustOK(t, s.CreateToken(ctx, token("t3", "shared")))
	got, err := s.GetToken(ctx, "t1")
	mustOK(t, err)
	mustEqual(t, "GetToken", got, tok)
	list, err := s.ListTokens(ctx, "ded")
	mustOK(t, err)
	mustEqual(t, "ListTokens", list, []Token{tok})

	mustOK(t, s.Enroll(ctx, "t1", ts(time.Minute), cert("01", "", ts(0))))
	mustOK(t, s.Enroll(ctx, "t3", ts(time.Minute), cert("02", "", ts(0))))
	h, err := s.GetHost(ctx, "ded")
	mustOK(t, err)
	if h.DedicatedBot != "b1" || h.EnrolledAt == nil {
		t.Fatalf("host enrolled with a token for b1: %+v", h)
	}
	h, err = s.GetHost(ctx, "shared")
	mustOK(t, err)
	if h.DedicatedBot != "" {
		t.Fatalf("host enrolled with a shared token is dedicated to %q", h.DedicatedBot)
	}
	hs, err := s.ListHosts(ctx)
	mustOK(t, err)
	if len(hs) != 2 || hs[0].DedicatedBot != "b1" || hs[1].DedicatedBot != "" {
		t.Fatalf("ListHosts: %+v", hs)
	}

	// A token for a bot goes with the bot; the host it enrolled stays dedicated to it.
	mustOK(t, s.CreateHost(ctx, host("later")))
	late := token("t4", "later")
	late.ForBot = "b1"
	mustOK(t, s.CreateToken(ctx, late))
	mustOK(t, s.DeleteBot(ctx, "b1"))
	if _, err := s.GetToken(ctx, "t4"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the token of a deleted bot: %v, want ErrNotFound", err)
	}
	h, err = s.GetHost(ctx, "ded")
	mustOK(t, err)
	if h.DedicatedBot != "b1" {
		t.Fatalf("the host of a deleted bot became %q", h.DedicatedBot)
	}
	created := Host{ID: "h9", Name: "nine", CreatedAt: ts(0), DedicatedBot: "b9"}
	mustOK(t, s.CreateHost(ctx, created))
	h, err = s.GetHost(ctx, "h9")
	mustOK(t, err)
	if h.DedicatedBot != "b9" {
		t.Fatalf("CreateHost's dedicated bot: %q", h.DedicatedBot)
	}
}

// testPlacementLock: a transaction that locks placement waits for another that holds it, on
// PostgreSQL by the advisory lock and on SQLite by the write lock every transaction takes.
func testPlacementLock(t *testing.T, s *Store) {
	ctx := t.Context()
	if err := s.LockPlacement(ctx); err == nil {
		t.Fatal("LockPlacement outside a transaction was accepted")
	}
	var done atomic.Bool
	locked := make(chan struct{})
	second := make(chan error, 1)
	go func() {
		<-locked
		second <- s.InTx(ctx, func(tx *Store) error {
			if err := tx.LockPlacement(ctx); err != nil {
				return err
			}
			if !done.Load() {
				return errors.New("took the placement lock while another transaction held it")
			}
			return nil
		})
	}()
	err := s.InTx(ctx, func(tx *Store) error {
		if err := tx.LockPlacement(ctx); err != nil {
			return err
		}
		close(locked)
		// Long enough for the other transaction to reach its lock, were it free.
		time.Sleep(300 * time.Millisecond)
		done.Store(true)
		return nil
	})
	mustOK(t, err)
	mustOK(t, <-second)
}

// TestBotOwnersMigration: bots recorded before migration 00006 keep everything they had and
// belong to an unknown operator, placed shared; going down drops the bots that wait (they
// have nothing on any host) and keeps the rest.
func TestBotOwnersMigration(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			rawURL := b.newURL(t)
			driver, dsn, gd, dialect := "sqlite", strings.TrimPrefix(rawURL, "sqlite:"), goose.DialectSQLite3, DialectSQLite
			if b.name == "postgres" {
				driver, dsn, gd, dialect = "pgx", rawURL, goose.DialectPostgres, DialectPostgres
			}
			if dialect == DialectSQLite {
				dsn += "?_pragma=foreign_keys(1)"
			}
			db, err := sql.Open(driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			sub, err := fs.Sub(migrations, "migrations/"+dialect)
			if err != nil {
				t.Fatal(err)
			}
			p, err := goose.NewProvider(gd, db, sub, goose.WithSlog(slog.New(slog.DiscardHandler)), goose.WithDisableGlobalRegistry(true))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpTo(t.Context(), 4); err != nil {
				t.Fatal(err)
			}
			old := &Store{dialect: dialect, db: db, rdb: db, w: db, r: db}
			ctx := t.Context()
			if _, err := old.exec(ctx, `INSERT INTO hosts (id, name, created_at) VALUES (?, ?, ?)`, "h1", "edge-1", ts(0)); err != nil {
				t.Fatal(err)
			}
			if _, err := old.exec(ctx, `INSERT INTO bots (id, name, host_id, spec, secrets, spec_version, desired, purge, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, "b1", "alice", "h1", []byte(`{"image":"x"}`), "v1:k1:s", 3, DesiredStopped, false, ts(0), ts(time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, err := old.exec(ctx, `INSERT INTO tokens (id, host_id, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
				"t1", "h1", []byte("0123456789abcdef0123456789abcdef"), ts(0), ts(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("up: %v", err)
			}

			got, err := old.GetBot(ctx, "b1")
			mustOK(t, err)
			want := Bot{ID: "b1", Name: "alice", HostID: "h1", Owner: Owner{Kind: OwnerOperator}, Placement: PlacementShared,
				Spec: []byte(`{"image":"x"}`), Secrets: "v1:k1:s", SpecVersion: 3, Desired: DesiredStopped, CreatedAt: ts(0), UpdatedAt: ts(time.Second)}
			mustEqual(t, "bot after the migration", got, want)
			tok, err := old.GetToken(ctx, "t1")
			mustOK(t, err)
			if tok.ForBot != "" || tok.HostID != "h1" {
				t.Fatalf("token after the migration: %+v", tok)
			}
			w := ownedBot("w1", time.Minute)
			w.Waiting = "no host has room"
			mustOK(t, old.CreateBot(ctx, w))
			// Placing on h1 still checks the host; deleting it is still refused while it has bots.
			if err := old.PlaceBot(ctx, "w1", "nowhere", ts(0)); !errors.Is(err, ErrNotFound) {
				t.Fatalf("place on an unknown host after the migration: %v", err)
			}
			if err := old.DeleteHost(ctx, "h1"); err == nil {
				t.Fatal("a host with bots was deleted after the migration")
			}

			if _, err := p.DownTo(ctx, 4); err != nil {
				t.Fatalf("down: %v", err)
			}
			var n int
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM bots`).Scan(&n); err != nil || n != 1 {
				t.Fatalf("bots after going down: %d (%v), want the placed one", n, err)
			}
			var name string
			if err := db.QueryRowContext(ctx, rebind(dialect, `SELECT name FROM bots WHERE id = ?`), "b1").Scan(&name); err != nil || name != "alice" {
				t.Fatalf("bot after going down: %q %v", name, err)
			}
			if err := db.QueryRowContext(ctx, rebind(dialect, `SELECT count(*) FROM tokens WHERE id = ?`), "t1").Scan(&n); err != nil || n != 1 {
				t.Fatalf("token after going down: %d %v", n, err)
			}
			if _, err := old.exec(ctx, `INSERT INTO bots (id, name, spec, secrets, spec_version, desired, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, "b2", "bob", []byte(`{}`), "x", 1, DesiredRunning, ts(0), ts(0)); err == nil {
				t.Fatal("a bot with no host was accepted after going down")
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("up again: %v", err)
			}
		})
	}
}
