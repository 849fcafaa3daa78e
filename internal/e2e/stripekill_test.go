package e2e_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/accounts"
	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/credits"
	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
	"github.com/pocketmolt/pocketmolt/internal/mail"
	"github.com/pocketmolt/pocketmolt/internal/secret"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/stripemock"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// TestPaymentsSurviveSIGKILLOfPMD kills pmd (SIGKILL, no shutdown code) while Stripe's
// webhooks for ten customers are in flight, restarts it, and lets Stripe retry every event
// twice, as it does until it gets a 200: each customer ends with exactly one bot and one
// period's credits, and every bot runs once a host connects.
func TestPaymentsSurviveSIGKILLOfPMD(t *testing.T) {
	d := engine(t)
	pmdBin, agentBin := buildBinaries(t)
	ctx := t.Context()
	dir := t.TempDir()
	data, state := filepath.Join(dir, "pm"), filepath.Join(dir, "agent")
	base := stripemock.Start(t)
	sc, err := billing.NewStripeClient(billing.StripeClientConfig{SecretKey: e2eStripeKey, APIBase: base})
	if err != nil {
		t.Fatal(err)
	}
	probe, err := sc.GetSubscription(ctx, "sub_probe")
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"stripe-key": e2eStripeKey, "whsec": e2eWhsec} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	publicAddr := freeAddr(t)
	config := filepath.Join(dir, "pmd.yaml")
	yaml := fmt.Sprintf(`public-addr: %s
agent-addr: %s
admin-addr: %s
heartbeat-interval: 500ms
bot-image: %s
bot-start-timeout: 1m
plans:
  - {id: solo, name: Solo, price: "20.00", currency: eur, stripe_price_id: %s, included_credits: "10.00",
     placement: shared, memory: 1GiB, cpus: 0.5, pids: 128, models: [anthropic/claude-sonnet-4-6]}
stripe:
  secret_key_file: %s
  webhook_secret_file: %s
  api_base: %s
`, publicAddr, freeAddr(t), freeAddr(t), testImage, probe.PriceID, filepath.Join(dir, "stripe-key"), filepath.Join(dir, "whsec"), base)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, pmdBin, "init", "--data-dir", data, "--config", config)

	// Ten customers with their assistants, written as pmd's own services write them.
	const n = 10
	users := make([]string, n)
	func() {
		st, err := store.Open(ctx, "sqlite:"+filepath.Join(data, "pmd.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		kr, err := secret.LoadKeyring(filepath.Join(data, "master.key"), "")
		if err != nil {
			t.Fatal(err)
		}
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		acc, err := accounts.New(accounts.Config{Store: st, Mailer: &mail.Log{Logger: log}, Logger: log, PublicURL: "http://" + publicAddr})
		if err != nil {
			t.Fatal(err)
		}
		bill := billing.New(st, nil, &credits.Ledger{Store: st}, kr, billing.Config{Plans: []billing.Plan{{ID: "solo", Name: "Solo",
			Price: "20.00", Currency: "eur", IncludedCredits: "10.00", Placement: billing.PlacementShared, Models: []string{"anthropic/claude-sonnet-4-6"}}}}, log)
		for i := range n {
			u, err := acc.Signup(ctx, fmt.Sprintf("c%d@example.com", i), "correct horse battery staple", fmt.Sprintf("198.51.100.%d", i+1))
			if err != nil {
				t.Fatal(err)
			}
			if err := bill.SaveAssistant(ctx, u.ID, billing.AssistantInput{Name: "A" + strconv.Itoa(i), PlanID: "solo",
				Model: "anthropic/claude-sonnet-4-6", WebChat: true, KeyMode: billing.KeyBYOK, APIKey: testAPIKey}); err != nil {
				t.Fatal(err)
			}
			users[i] = u.ID
		}
	}()

	serve := func() *proc {
		p := start(t, pmdBin, "serve", "--data-dir", data, "--config", config)
		eventually(t, 20*time.Second, "pmd serving", func() bool {
			resp, err := http.Get("http://" + publicAddr + "/healthz")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil && resp.StatusCode == http.StatusOK
		})
		return p
	}
	deliver := func(i int) (int, string) {
		body := checkoutCompleted(fmt.Sprintf("evt_kill_%d", i), users[i], fmt.Sprintf("sub_kill_%d", i))
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+publicAddr+"/webhooks/stripe", strings.NewReader(string(body)))
		req.Header.Set("Stripe-Signature", sign(body, e2eWhsec, time.Now()))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// All ten at once; pmd is killed as soon as the third is answered.
	pmdProc := serve()
	var wg sync.WaitGroup
	var mu sync.Mutex
	answered := 0
	killed := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			code, _ := deliver(i)
			mu.Lock()
			defer mu.Unlock()
			if code == http.StatusOK {
				answered++
				if answered == 3 {
					close(killed)
				}
			}
		})
	}
	select {
	case <-killed:
	case <-time.After(30 * time.Second):
		t.Fatalf("no webhook answered:\n%s", pmdProc.out)
	}
	pmdProc.kill()
	wg.Wait()
	t.Logf("%d of %d webhooks answered before pmd was killed", answered, n)

	// Stripe retries: every event, twice, to the restarted pmd.
	pmdProc = serve()
	for round := range 2 {
		for i := range n {
			if code, body := deliver(i); code != http.StatusOK {
				t.Fatalf("round %d, customer %d: %d %s\npmd:\n%s", round, i, code, body, pmdProc.out)
			}
		}
	}

	cfg, err := ctlconfig.Load(filepath.Join(data, "pmctl.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cc, _ := cfg.Current()
	admin, err := apiclient.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	bots, err := admin.ListBots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]int{}
	for _, b := range bots {
		owners[b.Owner]++
	}
	for _, u := range users {
		if owners["customer:"+u] != 1 {
			t.Errorf("customer %s has %d bots, want 1 (bots: %v)", u, owners["customer:"+u], owners)
		}
		cr, err := admin.GetCredits(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		// stripe-mock's fixture period is long past, so the grant has lapsed already: what
		// counts is that there is one.
		var grants []string
		for _, e := range cr.Entries {
			if e.Kind == "grant" {
				grants = append(grants, e.Amount)
			}
		}
		if len(grants) != 1 || grants[0] != "10.00" {
			t.Errorf("customer %s: grants %v; want one of 10.00", u, grants)
		}
	}
	if len(bots) != n {
		t.Fatalf("%d bots for %d customers", len(bots), n)
	}

	// A host connects: every customer's bot runs.
	tok, err := admin.CreateHostToken(ctx, wire.TokenRequest{Name: "edge-1"})
	if err != nil {
		t.Fatal(err)
	}
	run(t, agentBin, "enroll", "--server", tok.Server, "--token", tok.Token, "--state-dir", state, "--config", "/dev/null")
	host, err := admin.GetHost(ctx, "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeContainers(d, host.ID) })
	agentProc := start(t, agentBin, "run", "--state-dir", state, "--config", "/dev/null", "--bot-interval", "200ms",
		"--max-backoff", "500ms", "--bot-uid-base", strconv.Itoa(testUIDBase()), "--bot-firewall=false")
	deadline := time.Now().Add(3 * time.Minute)
	for {
		bs, err := admin.ListBots(ctx)
		up := 0
		for _, b := range bs {
			if running(b) {
				up++
			}
		}
		if err == nil && up == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d bots running after 3 minutes\nagent:\n%s", up, n, agentProc.out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
