package pmd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/bots"
	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/secret"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/store/storetest"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// testConfig is a data dir in a new temporary directory, with pmd on loopback ports.
func testConfig(t *testing.T) Config {
	return Config{
		DataDir:    filepath.Join(t.TempDir(), "pm"),
		PublicAddr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		HeartbeatInterval: 200 * time.Millisecond, LogLevel: "info",
	}
}

// initTest runs Init on a new data dir; mutate may change the config first.
func initTest(t *testing.T, mutate func(*Config)) Config {
	t.Helper()
	clearEnv(t)
	cfg := testConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	if err := Init(t.Context(), cfg, io.Discard); err != nil {
		t.Fatalf("init: %v", err)
	}
	return cfg
}

// run runs `pmd args…` as the binary would and returns its stdout and error.
func run(ctx context.Context, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	root := NewCommand(&stdout, &stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return stdout.String(), err
}

func openStore(t *testing.T, cfg Config) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), cfg.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// keyring reads cfg's key file as pmd would.
func keyring(t *testing.T, cfg Config) *secret.Keyring {
	t.Helper()
	kr, err := secret.LoadKeyring(cfg.KeyFile(), "")
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// keyIDs are the ids in cfg's key file, oldest first.
func keyIDs(t *testing.T, cfg Config) []string {
	t.Helper()
	b, err := os.ReadFile(cfg.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secret.ParseKeys(string(b))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	return ids
}

// addBots records a host and bots b-1…b-n whose secrets are sealed under kr, as the bots
// service seals them.
func addBots(t *testing.T, st *store.Store, kr *secret.Keyring, n int) {
	t.Helper()
	ctx := t.Context()
	if err := st.CreateHost(ctx, store.Host{ID: "h-1", Name: "edge-1", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		id := fmt.Sprint("b-", i)
		sealed, err := kr.Seal([]byte(`{"api_key":"sk-`+id+`"}`), "bots/"+id+"/secrets")
		if err != nil {
			t.Fatal(err)
		}
		addBot(t, st, id, sealed)
	}
}

func addBot(t *testing.T, st *store.Store, id, sealed string) {
	t.Helper()
	now := time.Now()
	err := st.CreateBot(t.Context(), store.Bot{ID: id, Name: "bot-" + id, HostID: "h-1", Spec: []byte(`{}`), Secrets: sealed,
		SpecVersion: 1, Desired: store.DesiredRunning, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
}

// openSealed opens every sealed value in st with kr: the plaintexts by place, and the places
// that did not open.
func openSealed(t *testing.T, st *store.Store, kr *secret.Keyring) (map[string]string, []string) {
	t.Helper()
	vs, err := st.ListSealed(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	opened := map[string]string{}
	var failed []string
	for _, v := range vs {
		ad, err := sealedAD(v)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := kr.Open(v.Value, ad)
		if err != nil {
			failed = append(failed, v.String())
			continue
		}
		opened[v.String()] = string(pt)
	}
	return opened, failed
}

// snapshot is everything a refused rotation must leave alone.
type snapshot struct {
	key    []byte
	mode   os.FileMode
	sealed []store.SealedValue
	audit  []store.AuditEntry
	files  []string
}

func takeSnapshot(t *testing.T, cfg Config, st *store.Store) snapshot {
	t.Helper()
	var s snapshot
	var err error
	if s.key, err = os.ReadFile(cfg.KeyFile()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(cfg.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	s.mode = fi.Mode()
	if s.sealed, err = st.ListSealed(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s.audit, err = st.ListAudit(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Dir(cfg.KeyFile()))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		s.files = append(s.files, e.Name())
	}
	return s
}

func (s snapshot) mustEqual(t *testing.T, after snapshot) {
	t.Helper()
	if !bytes.Equal(after.key, s.key) || after.mode != s.mode {
		t.Errorf("key file changed (mode %v → %v)", s.mode, after.mode)
	}
	if !slices.Equal(after.sealed, s.sealed) {
		t.Errorf("sealed values changed:\nbefore %v\nafter  %v", s.sealed, after.sealed)
	}
	if !slices.Equal(after.audit, s.audit) {
		t.Errorf("audit log changed:\nbefore %v\nafter  %v", s.audit, after.audit)
	}
	if !slices.Equal(after.files, s.files) {
		t.Errorf("files beside the key changed: %v → %v", s.files, after.files)
	}
}

// mustRotated checks that the rotation from old left one key in the file, mode 0600, and
// that every value in the database opens under it alone, to what it was, and not under old.
func mustRotated(t *testing.T, cfg Config, st *store.Store, old *secret.Keyring, want map[string]string) string {
	t.Helper()
	ids := keyIDs(t, cfg)
	if len(ids) != 1 {
		t.Fatalf("key file holds %v, want one key", ids)
	}
	fi, err := os.Stat(cfg.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %o, want 600", fi.Mode().Perm())
	}
	opened, failed := openSealed(t, st, keyring(t, cfg))
	if len(failed) > 0 {
		t.Fatalf("after rotation these do not open with the new key: %v", failed)
	}
	if len(opened) != len(want) {
		t.Fatalf("%d sealed values after rotation, want %d", len(opened), len(want))
	}
	for place, pt := range want {
		if opened[place] != pt {
			t.Errorf("%s changed in rotation", place)
		}
	}
	if stillOpen, _ := openSealed(t, st, old); len(stillOpen) > 0 {
		t.Errorf("the old key still opens %d values", len(stillOpen))
	}
	return ids[0]
}

func TestRotateKey(t *testing.T) {
	for _, backend := range []struct {
		name     string
		database func(t *testing.T) string
	}{
		{"sqlite", func(*testing.T) string { return "" }},
		{"postgres", func(t *testing.T) string { return storetest.PostgresURL(t) }},
	} {
		t.Run(backend.name, func(t *testing.T) {
			cfg := initTest(t, func(c *Config) { c.Database = backend.database(t) })
			st := openStore(t, cfg)
			k1 := keyring(t, cfg)
			addBots(t, st, k1, 2)
			want, failed := openSealed(t, st, k1)
			if len(want) != 5 || len(failed) > 0 {
				t.Fatalf("before rotation: %d values open, %v do not", len(want), failed)
			}

			out, err := run(t.Context(), "rotate-key", "--data-dir", cfg.DataDir)
			if err != nil {
				t.Fatalf("rotate-key: %v", err)
			}
			if out != "rotated master key k1 → k2: re-sealed 5 values\n" {
				t.Errorf("rotate-key printed %q", out)
			}
			if id := mustRotated(t, cfg, st, k1, want); id != "k2" {
				t.Errorf("new key id %s, want k2", id)
			}
			audit, err := st.ListAudit(t.Context(), 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(audit) != 1 || audit[0].Action != "pmd.rotate-key" || !strings.Contains(audit[0].Detail, "k1 → k2") {
				t.Errorf("last audit entry %+v, want the rotation", audit)
			}

			// Twice: the second rotation drops the first one's key.
			k2 := keyring(t, cfg)
			out, err = run(t.Context(), "rotate-key", "--data-dir", cfg.DataDir)
			if err != nil {
				t.Fatalf("second rotate-key: %v", err)
			}
			if out != "rotated master key k2 → k3: re-sealed 5 values\n" {
				t.Errorf("second rotate-key printed %q", out)
			}
			mustRotated(t, cfg, st, k2, want)
			if _, failed := openSealed(t, st, k1); len(failed) != 5 {
				t.Errorf("the first key still opens %d values", 5-len(failed))
			}

			// pmd starts on the rotated data dir and loads its CA.
			_, stop := serveTest(t, cfg)
			stop()
		})
	}
}

// serveTest opens pmd on cfg and serves it until stop is called (or the test ends).
func serveTest(t *testing.T, cfg Config) (*Daemon, func()) {
	t.Helper()
	d, err := Open(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("open pmd: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("pmd run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return d, stop
}

// TestRotateKeyInterrupted stops a rotation after each of its steps, as a crash would, and
// checks that pmd starts on what is left and that rotate-key, run again, converges.
func TestRotateKeyInterrupted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps func(t *testing.T, r *rotation, st *store.Store)
	}{
		{"after the new key is added", func(t *testing.T, r *rotation, st *store.Store) {
			if err := r.addKey(); err != nil {
				t.Fatal(err)
			}
		}},
		{"after re-sealing", func(t *testing.T, r *rotation, st *store.Store) {
			if err := r.addKey(); err != nil {
				t.Fatal(err)
			}
			if _, _, err := r.reseal(t.Context(), st, time.Now()); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := initTest(t, nil)
			st := openStore(t, cfg)
			k1 := keyring(t, cfg)
			addBots(t, st, k1, 1)
			want, _ := openSealed(t, st, k1)

			r, err := newRotation(cfg.KeyFile())
			if err != nil {
				t.Fatal(err)
			}
			tc.steps(t, r, st)
			if ids := keyIDs(t, cfg); !slices.Equal(ids, []string{"k1", "k2"}) {
				t.Fatalf("interrupted rotation left keys %v, want k1 and k2", ids)
			}
			if _, failed := openSealed(t, st, keyring(t, cfg)); len(failed) > 0 {
				t.Fatalf("the interrupted rotation's key file does not open %v", failed)
			}
			_, stop := serveTest(t, cfg)
			stop()

			both := keyring(t, cfg)
			out, err := run(t.Context(), "rotate-key", "--data-dir", cfg.DataDir)
			if err != nil {
				t.Fatalf("rotate-key again: %v", err)
			}
			if out != "rotated master key k1, k2 → k3: re-sealed 4 values\n" {
				t.Errorf("rotate-key printed %q", out)
			}
			mustRotated(t, cfg, st, both, want)
			_, stop = serveTest(t, cfg)
			stop()
		})
	}
}

// TestRotateKeyUnopenableValue: a value that does not open stops the rotation before
// anything changes, and the error names its row but not the value.
func TestRotateKeyUnopenableValue(t *testing.T) {
	foreign, err := secret.NewKey("k9")
	if err != nil {
		t.Fatal(err)
	}
	other, err := secret.NewKeyring(foreign)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		bad  func(t *testing.T, kr *secret.Keyring) string // the bad bot's sealed secrets
	}{
		{"sealed under a key the file lacks", func(t *testing.T, _ *secret.Keyring) string {
			s, err := other.Seal([]byte(`{"api_key":"sk-lost"}`), "bots/b-bad/secrets")
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"damaged", func(t *testing.T, kr *secret.Keyring) string {
			s, err := kr.Seal([]byte(`{"api_key":"sk-damaged"}`), "bots/b-bad/secrets")
			if err != nil {
				t.Fatal(err)
			}
			return s[:len(s)-4] + "AAAA"
		}},
		{"copied from another row", func(t *testing.T, kr *secret.Keyring) string {
			s, err := kr.Seal([]byte(`{"api_key":"sk-other"}`), "bots/b-1/secrets")
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := initTest(t, nil)
			st := openStore(t, cfg)
			kr := keyring(t, cfg)
			addBots(t, st, kr, 2)
			bad := tc.bad(t, kr)
			addBot(t, st, "b-bad", bad)
			before := takeSnapshot(t, cfg, st)

			_, err := run(t.Context(), "rotate-key", "--data-dir", cfg.DataDir)
			if err == nil {
				t.Fatal("rotate-key succeeded with a value it cannot open")
			}
			msg := err.Error()
			if !strings.Contains(msg, `bots row "b-bad"`) || !strings.Contains(msg, "nothing was changed") {
				t.Errorf("error %q does not name the row or say nothing changed", msg)
			}
			if body := bad[strings.LastIndex(bad, ":")+1:]; strings.Contains(msg, body[:16]) {
				t.Errorf("error reveals the sealed value: %q", msg)
			}
			before.mustEqual(t, takeSnapshot(t, cfg, st))
		})
	}
}

func TestRotateKeyRefusesEnvKey(t *testing.T) {
	cfg := initTest(t, nil)
	st := openStore(t, cfg)
	before := takeSnapshot(t, cfg, st)
	t.Setenv("PMD_MASTER_KEY", string(before.key))
	_, err := run(t.Context(), "rotate-key", "--data-dir", cfg.DataDir)
	if err == nil {
		t.Fatal("rotate-key rotated a key from PMD_MASTER_KEY")
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "PMD_MASTER_KEY") || !strings.Contains(msg, cfg.KeyFile()) {
		t.Errorf("error %q: want one line naming PMD_MASTER_KEY and the key file", msg)
	}
	if strings.Contains(err.Error(), strings.Fields(string(before.key))[1]) {
		t.Error("error reveals the key")
	}
	before.mustEqual(t, takeSnapshot(t, cfg, st))
}

// TestRotateKeyKeepsBotsAndCA is the whole path: a bot created through the bots service
// with a host online, pmd stopped, `pmd rotate-key`, and pmd started again opens its CA and
// builds the bot's spec with its secrets.
func TestRotateKeyKeepsBotsAndCA(t *testing.T) {
	cfg := initTest(t, nil)
	ctx := t.Context()
	d, stop := serveTest(t, cfg)
	root := pki.Fingerprint(d.CA.Root)
	tok, err := d.Fleet.CreateToken(ctx, "test", "edge-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	ast, err := agent.Enroll(ctx, agent.EnrollOptions{Server: d.AgentAddr, Token: tok.Token, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	a := agent.New(ast, nil, "test", slog.New(slog.DiscardHandler))
	a.Facts.Capacity = wire.Capacity{Bots: 2, MemoryBytes: 4 << 30}
	actx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan struct{})
	go func() { defer close(agentDone); a.Run(actx) }()
	t.Cleanup(func() { stopAgent(); <-agentDone })

	const apiKey = "sk-ant-test-0123456789abcdef"
	// Pinned to the host, so that it is placed there (once the host is online) before pmd stops.
	req := bots.NewBot{Name: "alice", Owner: bots.Operator("test"), Host: "edge-1", Placement: bots.PlacementShared,
		Model: "anthropic/claude-sonnet-4-6", APIKey: apiKey, Resources: wire.Resources{MemoryBytes: 1 << 30, CPUs: 1, PIDs: 256}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := d.Bots.Create(ctx, "test", req)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create bot: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopAgent()
	<-agentDone
	stop()

	out, err := run(ctx, "rotate-key", "--data-dir", cfg.DataDir)
	if err != nil {
		t.Fatalf("rotate-key: %v", err)
	}
	if out != "rotated master key k1 → k2: re-sealed 4 values\n" {
		t.Errorf("rotate-key printed %q", out)
	}

	d, _ = serveTest(t, cfg)
	if got := pki.Fingerprint(d.CA.Root); got != root {
		t.Fatalf("root CA %s after rotation, was %s", got, root)
	}
	set, err := d.Bots.Desired(ctx, ast.Identity.HostID)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Bots) != 1 || set.Bots[0].Model == nil || set.Bots[0].Model.Providers["anthropic"].Key != apiKey {
		t.Fatalf("after rotation the host's bots are %+v, want alice with her API key", set.Bots)
	}
}

// TestSealedADRefusesUnknownColumn: a sealed column rotation has not learnt stops it rather
// than being left under a key about to be dropped.
func TestSealedADRefusesUnknownColumn(t *testing.T) {
	_, err := sealedAD(store.SealedValue{Table: "users", Column: "token_sealed", Row: "u1", Value: "v1:k1:secret"})
	if err == nil || !strings.Contains(err.Error(), `users row "u1"`) || strings.Contains(err.Error(), "v1:k1") {
		t.Errorf("sealedAD of an unknown column = %v, want a refusal naming the row", err)
	}
}
