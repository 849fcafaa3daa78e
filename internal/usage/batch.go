package usage

import (
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/pocketmolt/pocketmolt/internal/httpapi"
	"github.com/pocketmolt/pocketmolt/internal/termsafe"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Bounds of what an agent may send in a usage batch. An agent may be compromised: everything
// in a batch is checked before any of it is written.
const (
	// MaxBatchBytes bounds a POST /v1/usage body: wire.MaxUsageBatch records and as many
	// refusals, each well under 1 KiB.
	MaxBatchBytes = 2 << 20
	// minIDLen and maxIDLen bound a record id's hex digits. Ids are global keys: a host that
	// could guess another's would keep its records out, so they must be long enough to be
	// random (64 bits at least).
	minIDLen, maxIDLen = 16, 64
	maxBotIDLen        = 64
	// MaxTokens bounds each token count of a record; MaxRefused bounds a refusal's count.
	MaxTokens  = 1_000_000_000
	MaxRefused = 1_000_000_000
	maxModel   = 128
	maxAPI     = 32
	maxMillis  = int64(7 * 24 * time.Hour / time.Millisecond)
	// maxPast and maxFuture bound a record's time around pmd's clock; a time beyond them is
	// the agent's clock gone wrong (or a lie), and the record is kept at the time pmd got it.
	maxPast   = 366 * 24 * time.Hour
	maxFuture = time.Hour
)

// DecodeBatch reads and checks a POST /v1/usage body: at most MaxBatchBytes of JSON whose
// records and refusals pass CheckBatch. Every failure is a *wire.Error.
func DecodeBatch(w http.ResponseWriter, r *http.Request, now time.Time) (wire.UsageBatch, error) {
	var b wire.UsageBatch
	if err := httpapi.Decode(w, r, MaxBatchBytes, &b); err != nil {
		return b, err
	}
	_, err := CheckBatch(&b, now)
	return b, err
}

// CheckBatch refuses a batch with more than wire.MaxUsageBatch records or refusals, or any
// whose shape is not what an agent makes: an id that is not 16–64 lower-case hex digits, a
// bot id that is not one, a provider, outcome or refusal reason pmd does not know, a negative
// or huge count, a status that is not one. It changes b in place: a record sent twice in the
// batch is kept once; model and api, which the bot chose, are escaped for terminals and cut
// to their bounds rather than refused (a refused batch would stay in its agent's spool for
// good); a time more than a year before now or an hour after it becomes now, and the number
// of those is returned. Every error is an invalid_argument *wire.Error.
func CheckBatch(b *wire.UsageBatch, now time.Time) (clamped int, err error) {
	if len(b.Records) > wire.MaxUsageBatch {
		return 0, wire.Errorf(wire.CodeInvalidArgument, "usage: more than %d records", wire.MaxUsageBatch)
	}
	if len(b.Refusals) > wire.MaxUsageBatch {
		return 0, wire.Errorf(wire.CodeInvalidArgument, "usage: more than %d refusals", wire.MaxUsageBatch)
	}
	seen := make(map[string]bool, len(b.Records))
	out := b.Records[:0]
	for i := range b.Records {
		rec := b.Records[i]
		if !wire.LowerHex(rec.ID, minIDLen, maxIDLen) {
			return 0, wire.Errorf(wire.CodeInvalidArgument, "usage: record id %q is not %d to %d lower-case hex digits", termsafe.Line(cut(rec.ID, maxIDLen)), minIDLen, maxIDLen)
		}
		bad := func(format string, args ...any) error {
			return wire.Errorf(wire.CodeInvalidArgument, "usage: record %s: "+format, append([]any{rec.ID}, args...)...)
		}
		t := rec.Tokens
		switch {
		case !wire.ValidBotID(rec.BotID):
			return 0, bad("bot id %q is not a bot id", termsafe.Line(cut(rec.BotID, maxBotIDLen)))
		case !slices.Contains(wire.ModelProviders(), rec.Provider):
			return 0, bad("provider %q is not one pmd knows", termsafe.Line(cut(rec.Provider, maxAPI)))
		case !knownOutcome(rec.Outcome):
			return 0, bad("outcome %q is not one pmd knows", termsafe.Line(cut(rec.Outcome, maxAPI)))
		case !inRange(t.Input, MaxTokens) || !inRange(t.Output, MaxTokens) || !inRange(t.CacheRead, MaxTokens) || !inRange(t.CacheWrite, MaxTokens):
			return 0, bad("token counts must be 0 to %d", MaxTokens)
		case rec.Status < 0 || rec.Status > 999:
			return 0, bad("status %d is not an HTTP status", rec.Status)
		case !inRange(rec.Millis, maxMillis):
			return 0, bad("duration %d ms is out of range", rec.Millis)
		case rec.Time.IsZero():
			return 0, bad("no time")
		}
		if seen[rec.ID] {
			continue
		}
		seen[rec.ID] = true
		rec.Model = text(rec.Model, maxModel)
		rec.API = text(rec.API, maxAPI)
		if rec.Time.Before(now.Add(-maxPast)) || rec.Time.After(now.Add(maxFuture)) {
			rec.Time = now
			clamped++
		}
		rec.Time = rec.Time.UTC()
		out = append(out, rec)
	}
	clear(b.Records[len(out):])
	b.Records = out
	for _, rf := range b.Refusals {
		switch {
		case !wire.ValidBotID(rf.BotID):
			return 0, wire.Errorf(wire.CodeInvalidArgument, "usage: refusal: bot id %q is not a bot id", termsafe.Line(cut(rf.BotID, maxBotIDLen)))
		case !slices.Contains(wire.ModelProviders(), rf.Provider):
			return 0, wire.Errorf(wire.CodeInvalidArgument, "usage: refusal of bot %s: provider %q is not one pmd knows", rf.BotID, termsafe.Line(cut(rf.Provider, maxAPI)))
		case !knownReason(rf.Reason):
			return 0, wire.Errorf(wire.CodeInvalidArgument, "usage: refusal of bot %s: reason %q is not one pmd knows", rf.BotID, termsafe.Line(cut(rf.Reason, maxAPI)))
		case !inRange(rf.Count, MaxRefused):
			return 0, wire.Errorf(wire.CodeInvalidArgument, "usage: refusal of bot %s: count must be 0 to %d", rf.BotID, MaxRefused)
		}
	}
	return clamped, nil
}

func inRange(n, max int64) bool { return n >= 0 && n <= max }

func knownOutcome(o string) bool {
	return o == wire.OutcomeOK || o == wire.OutcomeError || o == wire.OutcomeCut
}

func knownReason(r string) bool {
	switch r {
	case wire.RefusedCredits, wire.RefusedRate, wire.RefusedProvider, wire.RefusedToken, wire.RefusedUpstream:
		return true
	}
	return false
}

// text escapes s for a terminal, on one line, and cuts it to max bytes.
func text(s string, max int) string { return cut(termsafe.Line(s), max) }

// cut shortens s to at most max bytes without splitting a UTF-8 character.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
