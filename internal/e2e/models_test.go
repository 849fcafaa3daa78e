package e2e_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/standinprovider"
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
