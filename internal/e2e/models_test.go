package e2e_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/spool"
	"github.com/pocketmolt/pocketmolt/internal/standinprovider"
	"github.com/pocketmolt/pocketmolt/internal/store/storetest"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// TestModelGatewayOnDocker runs the whole model path on the real Engine — the stand-in
// gateway in a bot container → its host agent's model endpoint → the stand-in provider — for
// an operator's bot on the platform's key, a bot on its owner's own key, and customers on
// included credits: keys reach the provider and nothing else, every token is metered and
// debited once, credits run out with the customer's message, provider errors pass through
// and a bot cannot use another's model token.
func TestModelGatewayOnDocker(t *testing.T) {
	d := engine(t)
	p := modelPMD(t, nil)
	a := p.enrollDocker("models-1", d, modelHost)
	p.waitStatus("models-1", wire.HostOnline)
	ctx := t.Context()

	p.operatorBot("claude-op", sonnetModel, "")
	p.operatorBot("gpt-own", gptModel, byokOpenAIKey)
	lin, linBot := p.creditsCustomer("lin@example.com", sonnetModel, "10.00")
	ada, adaBot := p.creditsCustomer("ada@example.com", sonnetModel, "0.0005")
	bots := map[string]wire.Bot{}
	for _, ref := range []string{"claude-op", "gpt-own", linBot, adaBot} {
		bots[ref] = p.waitBot(ref, 2*time.Minute, "running and healthy", running)
	}
	platformKeys := map[string]string{"the platform's Anthropic key": platformAnthropicKey,
		"the platform's OpenAI key": platformOpenAIKey, "the customer's own OpenAI key": byokOpenAIKey}

	t.Run("keys reach the provider and no container, config, file or log", func(t *testing.T) {
		p.Provider.Reset()
		for _, b := range []struct{ ref, key, model string }{
			{"claude-op", platformAnthropicKey, "claude-sonnet-4-6"},
			{"gpt-own", byokOpenAIKey, "gpt-5.1"},
		} {
			r, err := p.admin().ChatBot(ctx, b.ref, wire.ChatRequest{Message: "plain words for " + b.ref, Session: "keys"})
			if err != nil {
				t.Fatalf("chat with %s: %v", b.ref, err)
			}
			if want := "stand-in " + b.model + ": plain words for " + b.ref; !strings.Contains(r.Reply, want) {
				t.Errorf("%s replied %q, want the provider's answer %q", b.ref, r.Reply, want)
			}
			st, text, raw := p.streamChat(t, b.ref, "keys-stream", "streamed words for "+b.ref)
			if want := "stand-in " + b.model + ": streamed words for " + b.ref; st != 200 || !strings.Contains(text, want) || !strings.Contains(raw, "data: [DONE]") {
				t.Errorf("%s streamed %q, want the provider's answer %q and [DONE]", b.ref, text, want)
			}
			calls := callsWith(p.Provider.Calls(), b.key)
			if len(calls) != 2 || calls[0].Stream || !calls[1].Stream {
				t.Fatalf("%s: the provider got %d calls with its key, want one whole and one streamed: %+v", b.ref, len(calls), calls)
			}
			for _, c := range calls {
				if c.Model != b.model || c.Status != 200 || c.Cut {
					t.Errorf("%s: provider call %+v, want model %s answered 200", b.ref, c, b.model)
				}
			}
		}
		for _, c := range p.Provider.Calls() {
			if c.APIKey != platformAnthropicKey && c.APIKey != byokOpenAIKey {
				t.Errorf("the provider got a call to %s with a key that is neither the platform's nor the owner's", c.Path)
			}
		}

		logSecrets := map[string]string{}
		for k, v := range platformKeys {
			logSecrets[k] = v
		}
		for _, ref := range []string{"claude-op", "gpt-own", linBot, adaBot} {
			b := bots[ref]
			out, err := exec.Command("docker", "inspect", b.ContainerID).Output()
			if err != nil {
				t.Fatal(err)
			}
			noSecretIn(t, "docker inspect of "+ref, out, platformKeys)
			if !strings.Contains(string(out), wire.EnvModelToken+"=") {
				t.Errorf("docker inspect of %s: no %s in its environment", ref, wire.EnvModelToken)
			}
			_, tok := modelEndpoint(t, b.ContainerID, b.ID)
			logSecrets["the model token of "+ref] = tok
			cfg, err := os.ReadFile(filepath.Join(a.A.State.Dir, "bots", b.ID, "config", "openclaw.json"))
			if err != nil {
				t.Fatal(err)
			}
			noSecretIn(t, "openclaw.json of "+ref, cfg, platformKeys)
			if !strings.Contains(string(cfg), "${PM_MODEL_TOKEN}") || !strings.Contains(string(cfg), "http://pocketmolt-models:18790/") {
				t.Errorf("openclaw.json of %s does not point its provider at the model endpoint with ${PM_MODEL_TOKEN}", ref)
			}
			logs, _ := exec.Command("docker", "logs", b.ContainerID).CombinedOutput()
			noSecretIn(t, "the container log of "+ref, logs, logSecrets)
		}
		if n := noSecretUnder(t, a.A.State.Dir, platformKeys); n == 0 {
			t.Fatal("the agent's state dir has no files")
		}
		if fis, err := os.ReadDir(filepath.Join(a.A.State.Dir, "usage")); err != nil || len(fis) == 0 {
			t.Errorf("no usage spool in the agent's state dir: %v", err)
		}

		for _, b := range []struct{ ref, key string }{{"claude-op", platformAnthropicKey}, {"gpt-own", byokOpenAIKey}} {
			calls := callsWith(p.Provider.Calls(), b.key)
			want := callTokens(calls)
			eventually(t, 20*time.Second, "usage of "+b.ref+" in pmd", func() bool {
				rep, err := p.admin().BotUsage(ctx, b.ref, "1d")
				if err != nil {
					return false
				}
				var n int64
				var got wire.Tokens
				for _, r := range rep.Rows {
					n += r.Calls
					got = sumTokens(got, r.Tokens)
				}
				return n == int64(len(calls)) && got == want
			})
			if recs := recordsOf(p.usageRecords(), bots[b.ref].ID); !sameTokens(recs, calls) {
				t.Errorf("%s: usage records %+v, want one per provider call %+v", b.ref, recs, calls)
			}
		}
		// Logs last: everything above has been logged by now.
		noSecretIn(t, "pmd's log", []byte(p.Logs.String()), logSecrets)
		noSecretIn(t, "the agent's log", []byte(a.Logs.String()), logSecrets)
	})

	t.Run("a customer on credits runs out, with the message, debited to the millionth", func(t *testing.T) {
		p.Provider.Reset()
		var refused error
		ok := 0
		for i := 0; i < 10; i++ {
			before := len(p.Provider.Calls())
			_, err := p.admin().ChatBot(ctx, adaBot, wire.ChatRequest{Message: fmt.Sprintf("question %d", i), Session: fmt.Sprint("q", i)})
			if err != nil {
				refused = err
				if n := len(p.Provider.Calls()); n != before {
					t.Fatalf("the refused call reached the provider (%d calls, was %d)", n, before)
				}
				break
			}
			ok++
		}
		if refused == nil || ok == 0 {
			t.Fatalf("after %d answered calls: refusal %v; want a few answered, then a refusal", ok, refused)
		}
		if !strings.Contains(refused.Error(), "Your included credits for this month are used up") {
			t.Fatalf("the refusal says %q, want the customer's message", refused)
		}
		calls := p.Provider.Calls()
		_, err := p.admin().ChatBot(ctx, adaBot, wire.ChatRequest{Message: "and again", Session: "again"})
		if err == nil || len(p.Provider.Calls()) != len(calls) {
			t.Fatalf("a call after the refusal: %v; the provider got %d calls, had %d", err, len(p.Provider.Calls()), len(calls))
		}
		st, _, raw := p.streamChat(t, adaBot, "again-streamed", "streamed after the end")
		if st != 502 || !strings.Contains(raw, "Your included credits for this month are used up") || len(p.Provider.Calls()) != len(calls) {
			t.Errorf("a streamed call after the refusal: %q; the provider got %d calls, had %d", raw, len(p.Provider.Calls()), len(calls))
		}
		want := costOf(t, calls)
		eventually(t, 20*time.Second, "ada's debits", func() bool { return p.debited(ada) == want })
		var debited int64
		for _, r := range recordsOf(p.usageRecords(), adaBot) {
			debited += r.Debited
		}
		if debited != want || len(calls) != ok {
			t.Errorf("records debit %d for %d calls, want %d for the provider's %d", debited, ok, want, len(calls))
		}
		t.Logf("%d calls answered, %d millionths debited from a balance of 500", ok, want)
	})

	t.Run("provider errors pass through and debit nothing; a cut stream is metered for what it carried", func(t *testing.T) {
		p.Provider.Reset()
		for _, st := range []int{401, 429, 500} {
			p.Provider.SetFault(standinprovider.Fault{Status: st, Count: 1})
			_, err := p.admin().ChatBot(ctx, linBot, wire.ChatRequest{Message: "a call that fails", Session: "faults"})
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("answered %d", st)) {
				t.Errorf("a provider answering %d: the client got %v", st, err)
			}
		}
		p.Provider.SetFault(standinprovider.Fault{CutAfter: 3, Count: 1})
		st, _, raw := p.streamChat(t, linBot, "cut", "this answer will break off in the middle")
		if st != 200 || strings.Contains(raw, "[DONE]") {
			t.Errorf("a cut stream ended with [DONE]: %q", raw)
		}
		p.Provider.SetFault(standinprovider.Fault{})
		calls := p.Provider.Calls()
		if len(calls) != 4 || calls[0].Status != 401 || calls[1].Status != 429 || calls[2].Status != 500 || !calls[3].Cut {
			t.Fatalf("the provider got %+v, want 401, 429, 500 and a cut stream", calls)
		}
		cut := calls[3].Usage
		if cut == (wire.Tokens{}) {
			t.Fatal("the cut stream carried no usage")
		}
		want := costOf(t, calls)
		var recs []usageRecord
		eventually(t, 20*time.Second, "lin's four records", func() bool {
			recs = recordsOf(p.usageRecords(), linBot)
			return len(recs) == 4
		})
		outcomes := map[string]int{}
		for _, r := range recs {
			outcomes[r.Outcome]++
			switch r.Outcome {
			case wire.OutcomeError:
				if r.Tokens != (wire.Tokens{}) || r.Debited != 0 {
					t.Errorf("an error record %+v is metered or debited", r)
				}
			case wire.OutcomeCut:
				if r.Tokens != cut || r.Debited != want {
					t.Errorf("the cut record %+v, want tokens %+v debited %d", r, cut, want)
				}
			}
		}
		if outcomes[wire.OutcomeError] != 3 || outcomes[wire.OutcomeCut] != 1 {
			t.Errorf("outcomes %v, want 3 errors and 1 cut", outcomes)
		}
		eventually(t, 20*time.Second, "lin's debit", func() bool { return p.debited(lin) == want })
	})

	t.Run("a bot's model token is refused from another bot", func(t *testing.T) {
		linC, adaC := bots[linBot].ContainerID, bots[adaBot].ContainerID
		linAddr, linTok := modelEndpoint(t, linC, linBot)
		_, adaTok := modelEndpoint(t, adaC, adaBot)
		p.Provider.Reset()
		body := `{"model":"claude-sonnet-4-6","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`
		call := func(headers ...string) (int, string) {
			args := []string{"-H", "anthropic-version: 2023-06-01", "-H", "content-type: application/json", "-d", body}
			for _, h := range headers {
				args = append(args, "-H", h)
			}
			return curlInside(t, linC, append(args, "http://"+linAddr+"/anthropic/v1/messages")...)
		}
		if code, out := call("x-api-key: " + adaTok); code != 401 || !strings.Contains(out, "authentication_error") {
			t.Errorf("another bot's token: %d %s", code, out)
		}
		if code, out := call(); code != 401 {
			t.Errorf("no token: %d %s", code, out)
		}
		if n := len(p.Provider.Calls()); n != 0 {
			t.Fatalf("refused calls reached the provider: %d", n)
		}
		if code, out := call("x-api-key: " + linTok); code != 200 || !strings.Contains(out, "stand-in claude-sonnet-4-6: hi") {
			t.Fatalf("the bot's own token: %d %s", code, out)
		}
		if calls := p.Provider.Calls(); len(calls) != 1 || calls[0].APIKey != platformAnthropicKey {
			t.Fatalf("the provider got %+v, want one call with the platform's key", calls)
		}
		var logged bool
		for _, line := range strings.Split(a.Logs.String(), "\n") {
			var v map[string]any
			if json.Unmarshal([]byte(line), &v) == nil && v["msg"] == "model call with another bot's token" &&
				v["bot_id"] == linBot && v["token_bot_id"] == adaBot {
				logged = true
			}
		}
		if !logged {
			t.Error("the agent did not log the other bot's token with both bots' ids")
		}
		noSecretIn(t, "the agent's log", []byte(a.Logs.String()), map[string]string{"lin's token": linTok, "ada's token": adaTok})
	})
}

// TestModelUsageSurvivesKills meters calls while pmd is down, SIGKILLs the agent (a process
// of its own) with those records in its spool, and brings both back: pmd then holds one
// record per call the provider answered, with the provider's tokens, none twice, and the
// customer's ledger is debited exactly what they cost.
func TestModelUsageSurvivesKills(t *testing.T) {
	d := engine(t)
	began := time.Now()
	agentBin := buildAgentBinary(t)
	t.Logf("built pmagent in %s", time.Since(began).Round(100*time.Millisecond))
	p := modelPMD(t, nil)
	ctx := t.Context()

	state := filepath.Join(t.TempDir(), "agent")
	run(t, agentBin, "enroll", "--server", p.D.AgentAddr, "--token", p.token("killed-1"), "--state-dir", state, "--config", "/dev/null")
	var id struct {
		HostID string `json:"host_id"`
	}
	b, _ := os.ReadFile(filepath.Join(state, "identity.json"))
	if err := json.Unmarshal(b, &id); err != nil || id.HostID == "" {
		t.Fatalf("identity.json: %v", err)
	}
	t.Cleanup(func() { removeContainers(d, id.HostID) })
	uidBase := strconv.Itoa(testUIDBase())
	agentRun := func() *proc {
		return start(t, agentBin, "run", "--state-dir", state, "--config", "/dev/null", "--bot-interval", "200ms",
			"--max-backoff", "500ms", "--bot-uid-base", uidBase, "--bot-firewall=false")
	}
	agentProc := agentRun()
	p.waitStatus("killed-1", wire.HostOnline)
	user, botID := p.creditsCustomer("kim@example.com", sonnetModel, "10.00")
	bot := p.waitBot(botID, 2*time.Minute, "running and healthy", running)

	for i := range 2 {
		if _, err := p.admin().ChatBot(ctx, botID, wire.ChatRequest{Message: fmt.Sprint("through pmd ", i), Session: "up"}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "the first calls in pmd", func() bool { return len(p.usageRecords()) == 2 })

	// pmd goes away; the bot goes on talking to its provider, and the agent meters it.
	p.stop()
	g := gatewayOf(t, bot.ContainerID)
	for i := range 3 {
		if code, body := g.chat(t, "down", fmt.Sprint("while pmd is down ", i)); code != 200 || !strings.Contains(body, "while pmd is down") {
			t.Fatalf("chat while pmd is down: %d %s", code, body)
		}
	}
	agentProc.kill()
	sp, err := spool.Open(filepath.Join(state, "usage"), discardLog())
	if err != nil {
		t.Fatal(err)
	}
	spooled := sp.Len()
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	if spooled < 3 {
		t.Fatalf("the killed agent's spool holds %d records, want the 3 calls made while pmd was down", spooled)
	}

	p.start()
	killed := agentProc
	agentProc = agentRun()
	calls := p.Provider.Calls()
	if len(calls) != 5 {
		t.Fatalf("the provider got %d calls, want 5", len(calls))
	}
	want := costOf(t, calls)
	var recs []usageRecord
	eventually(t, 30*time.Second, "every call in pmd once", func() bool {
		recs = p.usageRecords()
		return len(recs) >= 5 && p.debited(user) == want
	})
	time.Sleep(time.Second) // anything sent twice would have arrived by now
	recs = p.usageRecords()
	if !sameTokens(recs, calls) {
		t.Fatalf("usage records %+v, want one per provider call %+v", recs, calls)
	}
	var debited int64
	for _, r := range recs {
		debited += r.Debited
	}
	if got := p.debited(user); debited != want || got != want {
		t.Fatalf("records debit %d and the ledger %d, want the provider's calls' cost %d", debited, got, want)
	}
	_, tok := modelEndpoint(t, bot.ContainerID, botID)
	noSecretIn(t, "the agent processes' logs", []byte(killed.out.String()+agentProc.out.String()), map[string]string{
		"the platform's Anthropic key": platformAnthropicKey, "the platform's OpenAI key": platformOpenAIKey, "the bot's model token": tok})
	noSecretIn(t, "pmd's log", []byte(p.Logs.String()), map[string]string{"the bot's model token": tok})
	t.Logf("%d records spooled through the kill; %d calls, %d millionths debited", spooled, len(calls), want)
}

// TestModelCallsFromManyBotsAtOnce has six bots — customers on credits, an operator's on
// the platform's key and one on its owner's key — call their models at once, on SQLite and on
// PostgreSQL: each bot's records are the provider's calls for it, one for one, and each
// customer is debited what their calls cost.
func TestModelCallsFromManyBotsAtOnce(t *testing.T) {
	d := engine(t)
	for _, db := range []struct {
		name string
		url  func(testing.TB) string
	}{{"sqlite", nil}, {"postgres", storetest.PostgresURL}} {
		t.Run(db.name, func(t *testing.T) {
			p := modelPMD(t, func(c *pmdConfig) {
				if db.url != nil {
					c.Database = db.url(t)
				}
			})
			p.enrollDocker("many-1", d, modelHost)
			p.waitStatus("many-1", wire.HostOnline)
			ctx := t.Context()

			type botUnder struct{ ref, user string }
			var bots []botUnder
			for i := range 4 {
				user, id := p.creditsCustomer(fmt.Sprintf("c%d@example.com", i), sonnetModel, "10.00")
				bots = append(bots, botUnder{id, user})
			}
			p.operatorBot("op-gpt", gptModel, "")
			p.operatorBot("own-gpt", gptModel, byokOpenAIKey)
			bots = append(bots, botUnder{ref: "op-gpt"}, botUnder{ref: "own-gpt"})
			ids := map[string]string{}
			for _, b := range bots {
				ids[b.ref] = p.waitBot(b.ref, 2*time.Minute, "running and healthy", running).ID
			}

			const turns = 6
			errs := make(chan error, len(bots)*turns)
			var wg sync.WaitGroup
			for i, b := range bots {
				wg.Go(func() {
					for j := range turns {
						msg := fmt.Sprintf("[b%d] turn %d", i, j)
						if j%2 == 0 {
							if _, err := p.admin().ChatBot(ctx, b.ref, wire.ChatRequest{Message: msg, Session: "many"}); err != nil {
								errs <- err
							}
							continue
						}
						if st, text, _, err := p.tryStreamChat(ctx, b.ref, "many-streamed", msg); err != nil || st != 200 || !strings.Contains(text, msg) {
							errs <- fmt.Errorf("%s streamed %d %q: %v", b.ref, st, text, err)
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			calls := p.Provider.Calls()
			if len(calls) != len(bots)*turns {
				t.Fatalf("the provider got %d calls, want %d", len(calls), len(bots)*turns)
			}
			eventually(t, 30*time.Second, "every call in pmd", func() bool { return len(p.usageRecords()) == len(calls) })
			recs := p.usageRecords()
			for i, b := range bots {
				mine := callsMentioning(calls, fmt.Sprintf("[b%d] ", i))
				if got := recordsOf(recs, ids[b.ref]); len(mine) != turns || !sameTokens(got, mine) {
					t.Errorf("%s: records %+v, want one per provider call %+v", b.ref, got, mine)
				}
				rep, err := p.admin().BotUsage(ctx, b.ref, "1d")
				if err != nil {
					t.Fatal(err)
				}
				var n int64
				var tok wire.Tokens
				for _, r := range rep.Rows {
					n, tok = n+r.Calls, sumTokens(tok, r.Tokens)
				}
				if n != turns || tok != callTokens(mine) {
					t.Errorf("%s: usage report %d calls %+v, want %d calls %+v", b.ref, n, tok, turns, callTokens(mine))
				}
				if b.user != "" {
					if got, want := p.debited(b.user), costOf(t, mine); got != want {
						t.Errorf("%s: debited %d, want %d", b.ref, got, want)
					}
				}
			}
		})
	}
}
