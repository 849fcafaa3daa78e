// Package ratelimit bounds how often something may happen per key (a host, a source address)
// with a token bucket per key. The clock is passed in, so callers and tests decide what "now"
// is; nothing here sleeps.
package ratelimit

import (
	"sync"
	"time"
)

// Limit is a token bucket: it holds at most Burst tokens and gets one back every Every. A
// full bucket allows Burst events at once, then one per Every.
type Limit struct {
	Burst int
	Every time.Duration
}

// Keyed is a token bucket per key, holding at most MaxKeys buckets so that a caller who can
// make up keys (source addresses, say) cannot make it grow without end. It is safe for
// concurrent use.
type Keyed struct {
	limit   Limit
	maxKeys int

	mu      sync.Mutex
	buckets map[string]*bucket
}

// bucket is full at full: its tokens are (now - full)/Every short of Burst, never more.
type bucket struct{ full time.Time }

// New returns a Keyed limiter. A Limit with Burst < 1 or Every <= 0 allows nothing; maxKeys
// < 1 means one key.
func New(l Limit, maxKeys int) *Keyed {
	return &Keyed{limit: l, maxKeys: max(maxKeys, 1), buckets: map[string]*bucket{}}
}

// Allow takes a token from key's bucket at now. When the bucket is empty it takes nothing and
// returns false with how long until a token is back. A new key starts with a full bucket; when
// MaxKeys buckets are held, buckets that have refilled are dropped to make room, and if none
// has, a new key is refused as an empty bucket would be.
func (k *Keyed) Allow(key string, now time.Time) (bool, time.Duration) {
	l := k.limit
	if l.Burst < 1 || l.Every <= 0 {
		return false, time.Hour
	}
	window := time.Duration(l.Burst) * l.Every // from empty to full
	k.mu.Lock()
	defer k.mu.Unlock()
	b, ok := k.buckets[key]
	if !ok {
		if len(k.buckets) >= k.maxKeys {
			k.prune(now)
		}
		if len(k.buckets) >= k.maxKeys {
			return false, l.Every
		}
		b = &bucket{full: now}
		k.buckets[key] = b
	}
	// The bucket holds Burst - (full-now)/Every tokens; taking one moves full on by Every.
	full := b.full
	if full.Before(now) {
		full = now
	}
	next := full.Add(l.Every)
	if next.Sub(now) > window {
		return false, next.Sub(now) - window
	}
	b.full = next
	return true, 0
}

// prune drops the buckets that are full again at now: they hold nothing a new bucket would not.
func (k *Keyed) prune(now time.Time) {
	for key, b := range k.buckets {
		if !b.full.After(now) {
			delete(k.buckets, key)
		}
	}
}

// Len is the number of buckets held.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}
