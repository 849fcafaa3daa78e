package e2e_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/credits"
	"github.com/pocketmolt/pocketmolt/internal/openclaw"
	"github.com/pocketmolt/pocketmolt/internal/prices"
	"github.com/pocketmolt/pocketmolt/internal/standinprovider"
	"github.com/pocketmolt/pocketmolt/internal/usage"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Models the model gateway tests call, and a customer's own OpenAI key (BYOK).
const (
	sonnetModel   = "anthropic/claude-sonnet-4-6"
	gptModel      = "openai/gpt-5.1"
	byokOpenAIKey = "sk-byok-e2e-openai-0123456789abcdef"
)

// modelPlans is one plan whose 1 GiB bots fit the test host, on included credits.
func modelPlans() []billing.Plan {
	return []billing.Plan{{ID: "personal", Name: "Personal", Description: "Your own assistant.",
		Price: "19.00", Currency: "eur", IncludedCredits: "10.00", Placement: billing.PlacementShared,
		Memory: "1GiB", CPUs: 1, PIDs: 256, Models: []string{sonnetModel, gptModel}, ToolsProfile: "messaging"}}
}

// modelPMD is a pmd that runs bots on the local engine and sells modelPlans.
func modelPMD(t *testing.T, mutate func(*pmdConfig)) *testPMD {
	return startPMD(t, func(c *pmdConfig) {
		c.BotImage = testImage
		c.BotStartTimeout = time.Minute
		c.Plans = modelPlans()
		if mutate != nil {
			mutate(c)
		}
	})
}

// modelHost is a Docker host with room for every bot a model test runs.
var modelHost = wire.Capacity{Bots: 16, MemoryBytes: 64 << 30}

// operatorBot creates an operator's bot on model: on the platform's key when key is "",
// else on that key (BYOK).
func (p *testPMD) operatorBot(name, model, key string) {
	p.t.Helper()
	req := botRequest(name, "")
	req.Model, req.APIKey = model, key
	if _, err := p.admin().CreateBot(p.t.Context(), req); err != nil {
		p.t.Fatalf("create bot %s: %v", name, err)
	}
}

// creditsCustomer signs up a customer whose assistant runs on the plan's included credits,
// grants them the plan, and sets their balance to balance credits. It returns the
// customer's and their bot's ids.
func (p *testPMD) creditsCustomer(email, model, balance string) (userID, botID string) {
	t := p.t
	t.Helper()
	ctx := t.Context()
	u, err := p.D.Accounts.Signup(ctx, email, "correct horse battery staple", "127.0.0."+fmt.Sprint(2+len(email)%200))
	if err != nil {
		t.Fatalf("sign up %s: %v", email, err)
	}
	if err := p.D.Billing.SaveAssistant(ctx, u.ID, billing.AssistantInput{Name: "Helper", PlanID: "personal",
		Model: model, WebChat: true, KeyMode: billing.KeyCredits}); err != nil {
		t.Fatalf("assistant of %s: %v", email, err)
	}
	sub, err := p.admin().GrantSubscription(ctx, u.ID, wire.GrantRequest{Plan: "personal", Days: 30})
	if err != nil {
		t.Fatalf("grant %s: %v", email, err)
	}
	p.setBalance(u.ID, balance)
	return u.ID, sub.BotID
}

// setBalance adjusts a customer's credits so their balance is want.
func (p *testPMD) setBalance(userID, want string) {
	p.t.Helper()
	cr, err := p.admin().GetCredits(p.t.Context(), userID)
	if err != nil {
		p.t.Fatal(err)
	}
	have, err1 := credits.Parse(cr.Balance)
	target, err2 := credits.Parse(want)
	if err1 != nil || err2 != nil {
		p.t.Fatalf("balance %q, want %q: %v %v", cr.Balance, want, err1, err2)
	}
	if have == target {
		return
	}
	if _, err := p.admin().AdjustCredits(p.t.Context(), userID, wire.AdjustCreditsRequest{
		Amount: (target - have).String(), Reason: "model gateway test"}); err != nil {
		p.t.Fatalf("adjust credits of %s by %s: %v", userID, target-have, err)
	}
}

// debited is the sum of a customer's debits, in millionths of a credit.
func (p *testPMD) debited(userID string) int64 {
	p.t.Helper()
	cr, err := p.admin().GetCredits(p.t.Context(), userID)
	if err != nil {
		p.t.Fatal(err)
	}
	var sum int64
	for _, e := range cr.Entries {
		if e.Kind != "debit" {
			continue
		}
		a, err := credits.Parse(e.Amount)
		if err != nil {
			p.t.Fatalf("debit %q: %v", e.Amount, err)
		}
		sum += max(int64(a), -int64(a))
	}
	return sum
}

// defaultPrices is pmd's built-in price table, the one every test pmd charges by.
func defaultPrices(t *testing.T) prices.Table {
	t.Helper()
	tab, err := usage.ParsePrices(usage.DefaultPrices())
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// costOf is what the provider's complete and cut answers among calls cost at pmd's prices:
// what a customer on credits must be debited for them.
func costOf(t *testing.T, calls []standinprovider.Call) int64 {
	tab := defaultPrices(t)
	var sum int64
	for _, c := range calls {
		if c.Cut || (c.Status >= 200 && c.Status < 300) {
			price, _ := tab.Lookup(c.Provider, c.Model)
			sum += prices.Cost(price, c.Usage)
		}
	}
	return sum
}

// callsWith are the provider's calls that carried key.
func callsWith(calls []standinprovider.Call, key string) []standinprovider.Call {
	var out []standinprovider.Call
	for _, c := range calls {
		if c.APIKey == key {
			out = append(out, c)
		}
	}
	return out
}

func sumTokens(ts ...wire.Tokens) wire.Tokens {
	var s wire.Tokens
	for _, t := range ts {
		s.Input += t.Input
		s.Output += t.Output
		s.CacheRead += t.CacheRead
		s.CacheWrite += t.CacheWrite
	}
	return s
}

// callTokens sums the usage the provider reported in calls.
func callTokens(calls []standinprovider.Call) wire.Tokens {
	var s wire.Tokens
	for _, c := range calls {
		s = sumTokens(s, c.Usage)
	}
	return s
}

// usageRecord is one row of pmd's usage_records table.
type usageRecord struct {
	ID, BotID, Outcome string
	Status             int
	Tokens             wire.Tokens
	Cost, Debited      int64
}

// usageRecords reads every usage record pmd committed, straight from its database (SQLite in
// its data dir, or PostgreSQL), as an auditor would.
func (p *testPMD) usageRecords() []usageRecord {
	t := p.t
	t.Helper()
	driver, dsn := "pgx", p.cfg.DatabaseURL()
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		driver, dsn = "sqlite", path+"?_pragma=busy_timeout(5000)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), `SELECT id, bot_id, outcome, status, input_tokens, output_tokens,
		cache_read_tokens, cache_write_tokens, cost, debited FROM usage_records ORDER BY id`)
	if err != nil {
		t.Fatalf("read usage records: %v", err)
	}
	defer rows.Close()
	var out []usageRecord
	for rows.Next() {
		var r usageRecord
		if err := rows.Scan(&r.ID, &r.BotID, &r.Outcome, &r.Status, &r.Tokens.Input, &r.Tokens.Output,
			&r.Tokens.CacheRead, &r.Tokens.CacheWrite, &r.Cost, &r.Debited); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// recordsOf are the records of one bot.
func recordsOf(recs []usageRecord, botID string) []usageRecord {
	var out []usageRecord
	for _, r := range recs {
		if r.BotID == botID {
			out = append(out, r)
		}
	}
	return out
}

// sameTokens reports whether the records and the provider's calls are the same multiset of
// token counts: each call one record, none twice.
func sameTokens(recs []usageRecord, calls []standinprovider.Call) bool {
	if len(recs) != len(calls) {
		return false
	}
	left := map[wire.Tokens]int{}
	for _, c := range calls {
		left[c.Usage]++
	}
	for _, r := range recs {
		if left[r.Tokens] == 0 {
			return false
		}
		left[r.Tokens]--
	}
	return true
}

// streamChat sends one streaming chat turn to a bot through pmd and returns the status, the
// text of its content deltas and the whole body (an event stream, or an error answer).
func (p *testPMD) streamChat(t *testing.T, ref, session, msg string) (status int, text, raw string) {
	t.Helper()
	status, text, raw, err := p.tryStreamChat(t.Context(), ref, session, msg)
	if err != nil {
		t.Fatal(err)
	}
	return status, text, raw
}

// tryStreamChat is streamChat for goroutines: it returns what went wrong.
func (p *testPMD) tryStreamChat(ctx context.Context, ref, session, msg string) (status int, text, raw string, err error) {
	body, _ := json.Marshal(map[string]any{"model": "openclaw", "stream": true,
		"stream_options": map[string]bool{"include_usage": true},
		"messages":       []map[string]string{{"role": "user", "content": msg}}})
	resp, err := p.D.Bots.Gateway(ctx, ref, http.MethodPost, "/v1/chat/completions",
		http.Header{"Content-Type": {"application/json"}, "X-Openclaw-Session-Key": {session}}, strings.NewReader(string(body)))
	if err != nil {
		return 0, "", "", fmt.Errorf("stream chat with %s: %w", ref, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body) // a stream cut upstream ends early; what came is the answer
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode == http.StatusOK && !strings.HasPrefix(ct, "text/event-stream") {
		return 0, "", "", fmt.Errorf("stream chat with %s: content type %q", ref, ct)
	}
	return resp.StatusCode, deltaText(string(b)), string(b), nil
}

// deltaText joins the content deltas of an OpenAI-shaped event stream.
func deltaText(stream string) string {
	var text strings.Builder
	for _, line := range strings.Split(stream, "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var v struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(data), &v) == nil && len(v.Choices) > 0 {
			text.WriteString(v.Choices[0].Delta.Content)
		}
	}
	return text.String()
}

// directGateway is a bot's gateway as its host sees it, without pmd: the port published on
// 127.0.0.1 and the gateway token from the container's environment.
type directGateway struct {
	url, token string
}

func gatewayOf(t *testing.T, containerID string) directGateway {
	t.Helper()
	c := dockerInspect(t, containerID)
	var g directGateway
	for _, pb := range asSlice(dig(c, "NetworkSettings", "Ports", "18789/tcp")) {
		if port, _ := dig(pb.(map[string]any), "HostPort").(string); port != "" {
			g.url = "http://127.0.0.1:" + port
		}
	}
	for _, e := range asSlice(dig(c, "Config", "Env")) {
		if v, ok := strings.CutPrefix(fmt.Sprint(e), openclaw.EnvGatewayToken+"="); ok {
			g.token = v
		}
	}
	if g.url == "" || g.token == "" {
		t.Fatalf("container %s: no published gateway port or gateway token", containerID)
	}
	return g
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// chat sends one non-streaming turn and returns the status and body.
func (g directGateway) chat(t *testing.T, session, msg string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": "openclaw", "messages": []map[string]string{{"role": "user", "content": msg}}})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, g.url+"/v1/chat/completions", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+g.token)
	req.Header.Set("X-Openclaw-Session-Key", session)
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("chat with the gateway at %s: %v", g.url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// modelEndpoint is where a bot's container reaches its model endpoint (its network's
// gateway address, port 18790), and the bot's model token from its environment.
func modelEndpoint(t *testing.T, containerID, botID string) (addr, token string) {
	t.Helper()
	c := dockerInspect(t, containerID)
	gw, _ := dig(c, "NetworkSettings", "Networks", "pm-"+botID, "Gateway").(string)
	for _, e := range asSlice(dig(c, "Config", "Env")) {
		if v, ok := strings.CutPrefix(fmt.Sprint(e), wire.EnvModelToken+"="); ok {
			token = v
		}
	}
	if gw == "" || token == "" {
		t.Fatalf("container %s: no network gateway or model token", containerID)
	}
	return gw + ":18790", token
}

// curlInside makes an HTTP request from inside a container's network namespace (as code in
// the bot would), with the host's curl: it returns the status and body.
func curlInside(t *testing.T, containerID string, args ...string) (int, string) {
	t.Helper()
	pid, _ := dig(dockerInspect(t, containerID), "State", "Pid").(float64)
	if pid == 0 {
		t.Fatalf("container %s has no process", containerID)
	}
	out, err := exec.Command("nsenter", append([]string{"-t", fmt.Sprint(int(pid)), "-n", "--", "curl", "-sS", "-m", "10",
		"-w", "\n%{http_code}"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl inside %s: %v\n%s", containerID, err, out)
	}
	s := strings.TrimRight(string(out), "\n")
	i := strings.LastIndexByte(s, '\n')
	var code int
	fmt.Sscan(s[i+1:], &code)
	return code, s[:max(i, 0)]
}

// noSecretIn fails when data holds any of secrets, naming where (never the secret).
func noSecretIn(t *testing.T, where string, data []byte, secrets map[string]string) {
	t.Helper()
	for name, s := range secrets {
		if strings.Contains(string(data), s) {
			t.Errorf("%s holds %s", where, name)
		}
	}
}

// noSecretUnder walks dir and fails for any file holding one of secrets.
func noSecretUnder(t *testing.T, dir string, secrets map[string]string) (files int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil // a bot's private dir the test cannot read is not the agent's to leak
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		files++
		noSecretIn(t, path, b, secrets)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// buildAgentBinary compiles pmagent for a test that runs it as its own process.
func buildAgentBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pmagent")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/pocketmolt/pocketmolt/cmd/pmagent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build pmagent: %v\n%s", err, out)
	}
	return bin
}

// callsMentioning are the provider's calls whose body holds marker.
func callsMentioning(calls []standinprovider.Call, marker string) []standinprovider.Call {
	var out []standinprovider.Call
	for _, c := range calls {
		if strings.Contains(c.Body, marker) {
			out = append(out, c)
		}
	}
	return out
}
