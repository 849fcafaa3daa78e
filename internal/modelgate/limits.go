package modelgate

import (
	"fmt"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// window holds the times of a bot's last calls, for a sliding per-minute limit.
type window struct{ t []time.Time }

// wait is how long until one more call fits in limit calls a span, at now: 0 when it does.
func (w *window) wait(now time.Time, limit int, span time.Duration) time.Duration {
	cut := now.Add(-span)
	i := 0
	for i < len(w.t) && !w.t[i].After(cut) {
		i++
	}
	w.t = w.t[i:]
	if len(w.t) < limit {
		return 0
	}
	return w.t[len(w.t)-limit].Sub(cut)
}

func (w *window) add(now time.Time) { w.t = append(w.t, now) }

// dayCount is a bot's calls on one UTC day, for the per-day limit.
type dayCount struct {
	day time.Time
	n   int
}

// wait is how long until one more call fits in limit calls a UTC day, at now: 0 when it
// does.
func (d *dayCount) wait(now time.Time, limit int) time.Duration {
	u := now.UTC()
	day := time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC)
	if !day.Equal(d.day) {
		d.day, d.n = day, 0
	}
	if d.n < limit {
		return 0
	}
	return day.AddDate(0, 0, 1).Sub(u)
}

func (d *dayCount) add() { d.n++ }

// admission is the gate's verdict on a call before it is forwarded.
type admission struct {
	reason string // "" when admitted
	answer answer
	// reserved is true when the call holds a reservation of its bot's allowance, to be
	// released once (see Gate.release).
	reserved bool
}

// inFlightRetry is the Retry-After, in seconds, of a call refused because the bot's calls in
// flight may use up what is left: about as long as a model call takes.
const inFlightRetry = 5

// admit decides on a call of the bot at now: credits (metered calls of a bot on credits
// only) before limits, and a call admitted counts against the limits. A metered call on
// credits is admitted only when cost, what it may cost at most, fits in the allowance beside
// the spend pending and the reservations of the calls in flight; it then reserves cost, in the
// same critical section, so that calls admitted at once see each other. Needs nothing held.
func (b *bot) admit(a *access, now time.Time, metered bool, cost int64) admission {
	b.mu.Lock()
	defer b.mu.Unlock()
	reserve := metered && a.credits
	if reserve {
		left := satSub(b.allowance.Remaining, b.pendingSpend())
		switch {
		case left <= 0:
			msg := b.allowance.Message
			if msg == "" {
				msg = "Your included credits are used up: add your own API key or wait for your next credits."
			}
			return admission{reason: wire.RefusedCredits, answer: errCredits(msg)}
		case b.holds > 0 && b.reserved > left-cost:
			// With nothing in flight a call is admitted while anything is left, so that a
			// customer's last credits are usable (it may end past them by its own cost, as a
			// call always could); beside calls in flight, only what fits beside them.
			// This passes: a call in flight ends, and its actual cost, mostly far below what
			// it held, replaces its reservation. So the answer is a rate limit, which SDKs
			// retry after Retry-After, not the credits refusal, which they give up on.
			return admission{reason: wire.RefusedCredits, answer: errRate(fmt.Sprintf(
				"This bot's model calls in progress may use up its remaining credits; try again in %d seconds.", inFlightRetry),
				inFlightRetry)}
		}
	}
	if l := a.limits.PerMinute; l > 0 {
		if wait := b.minute.wait(now, l, time.Minute); wait > 0 {
			secs := seconds(wait)
			return admission{reason: wire.RefusedRate, answer: errRate(fmt.Sprintf(
				"This bot may make %d model calls a minute; try again in %d seconds.", l, secs), secs)}
		}
	}
	if l := a.limits.PerDay; l > 0 {
		if wait := b.day.wait(now, l); wait > 0 {
			return admission{reason: wire.RefusedRate, answer: errRate(fmt.Sprintf(
				"This bot may make %d model calls a day; try again after 00:00 UTC, in %s.", l, wait.Round(time.Minute)), seconds(wait))}
		}
	}
	if a.limits.PerMinute > 0 {
		b.minute.add(now)
	}
	if a.limits.PerDay > 0 {
		b.day.add()
	}
	if reserve {
		b.reserved += cost // at most left: checked above
		b.holds++
	}
	return admission{reserved: reserve}
}

// seconds is d in whole seconds, rounded up, at least 1.
func seconds(d time.Duration) int64 {
	return max(int64((d+time.Second-1)/time.Second), 1)
}
