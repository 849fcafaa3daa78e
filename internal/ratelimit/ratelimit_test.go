package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func TestAllow(t *testing.T) {
	type step struct {
		at   time.Duration // since t0
		key  string
		ok   bool
		wait time.Duration // when refused
	}
	tests := []struct {
		name  string
		limit Limit
		steps []step
	}{
		{"a full bucket allows the burst, then one per interval", Limit{Burst: 3, Every: time.Hour}, []step{
			{0, "a", true, 0},
			{0, "a", true, 0},
			{0, "a", true, 0},
			{0, "a", false, time.Hour},
			{30 * time.Minute, "a", false, 30 * time.Minute},
			{time.Hour, "a", true, 0},
			{time.Hour, "a", false, time.Hour},
			{5 * time.Hour, "a", true, 0}, // refilled, but to the burst only
			{5 * time.Hour, "a", true, 0},
			{5 * time.Hour, "a", true, 0},
			{5 * time.Hour, "a", false, time.Hour},
		}},
		{"keys have their own buckets", Limit{Burst: 1, Every: time.Minute}, []step{
			{0, "a", true, 0},
			{0, "a", false, time.Minute},
			{0, "b", true, 0},
			{0, "b", false, time.Minute},
			{time.Minute, "a", true, 0},
		}},
		{"a clock that goes back refuses rather than refills", Limit{Burst: 1, Every: time.Minute}, []step{
			{time.Hour, "a", true, 0},
			{0, "a", false, time.Hour + time.Minute},
		}},
		{"a zero limit allows nothing", Limit{}, []step{
			{0, "a", false, time.Hour},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := New(tt.limit, 10)
			for i, s := range tt.steps {
				ok, wait := k.Allow(s.key, t0.Add(s.at))
				if ok != s.ok || (!ok && wait != s.wait) {
					t.Fatalf("step %d (%s at +%s): Allow = %v, %s; want %v, %s", i, s.key, s.at, ok, wait, s.ok, s.wait)
				}
			}
		})
	}
}

// Made-up keys cannot make the limiter grow past its bound; once their buckets refill they
// make room again.
func TestMaxKeys(t *testing.T) {
	k := New(Limit{Burst: 2, Every: time.Minute}, 3)
	for i := range 3 {
		if ok, _ := k.Allow(fmt.Sprint(i), t0); !ok {
			t.Fatalf("key %d refused", i)
		}
	}
	if ok, wait := k.Allow("x", t0); ok || wait != time.Minute {
		t.Fatalf("a fourth key while three buckets are in use: %v, %s; want refused for a minute", ok, wait)
	}
	if n := k.Len(); n != 3 {
		t.Fatalf("%d buckets, want 3", n)
	}
	// A minute later the three are full again and make way.
	if ok, _ := k.Allow("x", t0.Add(time.Minute)); !ok {
		t.Fatal("a new key refused after the others refilled")
	}
	if n := k.Len(); n != 1 {
		t.Fatalf("%d buckets after pruning, want 1", n)
	}
}

func TestConcurrent(t *testing.T) {
	k := New(Limit{Burst: 50, Every: time.Hour}, 10)
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			if ok, _ := k.Allow("a", t0); ok {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if allowed != 50 {
		t.Fatalf("%d allowed, want the burst of 50", allowed)
	}
}
