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
}

// admit decides on a call of the bot at now: credits (metered calls of a bot on credits
// only) before limits, and a call admitted counts against the limits. Needs nothing held.
func (b *bot) admit(a *access, now time.Time, metered bool) admission {
	b.mu.Lock()
	defer b.mu.Unlock()
	if metered && a.credits {
		if left := b.allowance.Remaining - b.pendingSpend(); left <= 0 {
			msg := b.allowance.Message
			if msg == "" {
				msg = "Your included credits are used up: add your own API key or wait for your next credits."
			}
			return admission{reason: wire.RefusedCredits, answer: errCredits(msg)}
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
	return admission{}
}

// seconds is d in whole seconds, rounded up, at least 1.
func seconds(d time.Duration) int64 {
	return max(int64((d+time.Second-1)/time.Second), 1)
}
