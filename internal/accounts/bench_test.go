package accounts

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/ratelimit"
)

// BenchmarkLogin is a whole login with DefaultParams on SQLite: the rate limits, the user's
// row, argon2id verification and the new session's row. The aim: under 150 ms.
func BenchmarkLogin(b *testing.B) {
	h := benchHarness(b, DefaultParams)
	ctx := context.Background()
	if _, err := h.svc.Signup(ctx, "ada@example.com", goodPassword, "192.0.2.1"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := h.svc.Login(ctx, "ada@example.com", goodPassword, fmt.Sprintf("10.0.%d.%d", i/250%250, i%250)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/login")
}

// BenchmarkLoginUnknownEmail is the same for an email with no account: the dummy verify
// should cost what a real one does.
func BenchmarkLoginUnknownEmail(b *testing.B) {
	h := benchHarness(b, DefaultParams)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		if _, err := h.svc.Login(ctx, "nobody@example.com", goodPassword, fmt.Sprintf("10.1.%d.%d", i/250%250, i%250)); err != ErrBadCredentials {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/login")
}

// BenchmarkAuthenticate is what every logged-in page pays: the session and user rows.
func BenchmarkAuthenticate(b *testing.B) {
	h := benchHarness(b, testParams)
	ctx := context.Background()
	u, err := h.svc.Signup(ctx, "ada@example.com", goodPassword, "192.0.2.1")
	if err != nil {
		b.Fatal(err)
	}
	sess, err := h.svc.StartSession(ctx, u.ID)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := h.svc.Authenticate(ctx, sess.Token); err != nil {
			b.Fatal(err)
		}
	}
}

func benchHarness(b *testing.B, p Params) *harness {
	b.Helper()
	h := newHarnessTB(b, "sqlite:"+filepath.Join(b.TempDir(), "pm.db"), func(c *Config) {
		c.Params = p
		c.Limits.LoginPerAccount = ratelimit.Limit{Burst: 1 << 30, Every: 1}
		c.Limits.LoginPerIP = ratelimit.Limit{Burst: 1 << 30, Every: 1}
	})
	return h
}
