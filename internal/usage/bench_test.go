package usage_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// BenchmarkCommit measures usage records pmd commits per second, in batches of 500 for 20
// bots of two customers (every record debited), one agent at a time ("serial") and from
// several at once ("parallel"). PostgreSQL runs when PM_TEST_POSTGRES_URL is set.
func BenchmarkCommit(b *testing.B) {
	const size = 500
	for _, name := range []string{"sqlite", "postgres"} {
		for _, parallel := range []bool{false, true} {
			mode := "serial"
			if parallel {
				mode = "parallel"
			}
			b.Run(name+"/"+mode, func(b *testing.B) {
				var bots []string
				for i := range 20 {
					bots = append(bots, fmt.Sprintf("b%02d", i))
				}
				f := newFixture(b, backends()[name](b), bots...)
				batch := func() wire.UsageBatch {
					var ub wire.UsageBatch
					for j := range size {
						ub.Records = append(ub.Records, rec(bots[j%len(bots)], "claude-sonnet-4-6", wire.Tokens{Input: 1200, Output: 300, CacheRead: 40}))
					}
					return ub
				}
				commit := func(ub wire.UsageBatch) {
					r, err := f.svc.Commit(b.Context(), "h1", ub)
					if err != nil || r.Committed != size {
						b.Fatalf("Commit = %d, %v", r.Committed, err)
					}
				}
				var n atomic.Int64
				b.ResetTimer()
				if parallel {
					b.SetParallelism(2) // 2×GOMAXPROCS agents sending at once
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							commit(batch()) // making a batch takes well under 1% of committing it
							n.Add(1)
						}
					})
				} else {
					for b.Loop() {
						b.StopTimer()
						ub := batch()
						b.StartTimer()
						commit(ub)
						n.Add(1)
					}
				}
				b.ReportMetric(float64(n.Load()*size)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}
