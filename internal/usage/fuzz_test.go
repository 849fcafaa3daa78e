package usage_test

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/termsafe"
	"github.com/pocketmolt/pocketmolt/internal/usage"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// FuzzDecodeBatch: whatever an agent sends, DecodeBatch either refuses it with a
// *wire.Error or returns a batch that is within every bound, with its free text safe for a
// terminal, and that a second check accepts unchanged.
func FuzzDecodeBatch(f *testing.F) {
	good := must(json.Marshal(wire.UsageBatch{
		Records: []wire.UsageRecord{{ID: "0123456789abcdef0123456789abcdef", BotID: "c1", Provider: "anthropic", Model: "claude-sonnet-4-6",
			API: "messages", Status: 200, Outcome: "ok", Tokens: wire.Tokens{Input: 1, Output: 2}, Time: now}},
		Refusals: []wire.UsageRefusal{{BotID: "c1", Provider: "openai", Reason: "credits", Count: 3}},
	}))
	for _, s := range [][]byte{
		good, []byte(`{}`), []byte(`{"records":null}`), []byte(`{"records":[{"id":"0123456789abcdef","bot_id":"a","provider":"openai","outcome":"cut","model":"\u001b[2J","time":"2027-02-14T12:00:00Z"}]}`),
		[]byte(`{"records":[{"id":"0123456789abcdef","bot_id":"a","provider":"openai","outcome":"ok","time":"1970-01-01T00:00:00Z","tokens":{"input":-1}}]}`),
		[]byte(`[1,2]`), []byte(`{"refusals":[{"bot_id":"x","provider":"anthropic","reason":"rate","count":1e12}]}`),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/v1/usage", bytes.NewReader(body))
		b, err := usage.DecodeBatch(w, r, now)
		if err != nil {
			if _, ok := err.(*wire.Error); !ok {
				t.Fatalf("error %v is not a *wire.Error", err)
			}
			return
		}
		if len(b.Records) > wire.MaxUsageBatch || len(b.Refusals) > wire.MaxUsageBatch {
			t.Fatalf("%d records, %d refusals accepted", len(b.Records), len(b.Refusals))
		}
		seen := map[string]bool{}
		for _, rec := range b.Records {
			if seen[rec.ID] {
				t.Fatalf("record %s kept twice", rec.ID)
			}
			seen[rec.ID] = true
			if len(rec.Model) > 128 || len(rec.API) > 32 || !termsafe.IsPlain(rec.Model) || !termsafe.IsPlain(rec.API) {
				t.Fatalf("model %q, api %q accepted", rec.Model, rec.API)
			}
			if rec.Time.Before(now.Add(-367*24*time.Hour)) || rec.Time.After(now.Add(time.Hour)) {
				t.Fatalf("time %v accepted", rec.Time)
			}
		}
		again := b
		again.Records = append([]wire.UsageRecord(nil), b.Records...)
		if n, err := usage.CheckBatch(&again, now); err != nil || n != 0 || len(again.Records) != len(b.Records) {
			t.Fatalf("a checked batch checked again: %d clamped, %v", n, err)
		}
		for i := range again.Records {
			if again.Records[i] != b.Records[i] {
				t.Fatalf("a checked record changed when checked again: %+v → %+v", b.Records[i], again.Records[i])
			}
		}
	})
}
