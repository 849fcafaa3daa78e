package credits_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/credits"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/store/storetest"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func day(n int) time.Time { return t0.Add(time.Duration(n) * 24 * time.Hour) }

func TestAmount(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    credits.Amount
		str     string
		dollars string
	}{
		{"10", 10 * credits.Micro, "10.00", "$10.00"},
		{"9.5", 9_500_000, "9.50", "$9.50"},
		{"0.000001", 1, "0.000001", "$0.00"},
		{"-0.0042", -4200, "-0.0042", "-$0.00"},
		{"+3.25", 3_250_000, "3.25", "$3.25"},
		{".5", 500_000, "0.50", "$0.50"},
	} {
		got, err := credits.Parse(tc.in)
		if err != nil || got != tc.want || got.String() != tc.str || got.Dollars() != tc.dollars {
			t.Errorf("Parse(%q) = %d (%s, %s), %v; want %d (%s, %s)", tc.in, got, got, got.Dollars(), err, tc.want, tc.str, tc.dollars)
		}
	}
	for _, bad := range []string{"", "-", ".", "1.2345678", "ten", "1e3", "1_000", "--1", "1.-2", "9999999999999"} {
		if _, err := credits.Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"10", "9.50", "-0.000001", "", ".", "1e9", "+.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := credits.Parse(s)
		if err != nil {
			return
		}
		if b, err := credits.Parse(a.String()); err != nil || b != a {
			t.Fatalf("Parse(%q) = %d, whose String %q parses to %d, %v", s, a, a.String(), b, err)
		}
	})
}

func entry(kind string, amount credits.Amount, at time.Time, expires *time.Time) store.CreditEntry {
	return store.CreditEntry{Kind: kind, Amount: int64(amount), CreatedAt: at, ExpiresAt: expires}
}

func TestReplay(t *testing.T) {
	m := credits.Micro
	e10, e40 := day(30), day(60)
	for _, tc := range []struct {
		name          string
		es            []store.CreditEntry
		now           time.Time
		bal, included credits.Amount
	}{
		{"nothing", nil, day(1), 0, 0},
		{"a grant, partly used", []store.CreditEntry{entry(store.CreditGrant, 10*m, day(0), &e10), entry(store.CreditDebit, -3*m, day(2), nil)}, day(3), 7 * m, 7 * m},
		{"what is left of a grant lapses at its end", []store.CreditEntry{entry(store.CreditGrant, 10*m, day(0), &e10), entry(store.CreditDebit, -3*m, day(2), nil)}, day(30), 0, 0},
		{"no carry-over into the next period", []store.CreditEntry{entry(store.CreditGrant, 10*m, day(0), &e10), entry(store.CreditGrant, 10*m, day(30), &e40)}, day(31), 10 * m, 10 * m},
		{"adjustments do not lapse and are spent last", []store.CreditEntry{
			entry(store.CreditAdjust, 5*m, day(0), nil), entry(store.CreditGrant, 10*m, day(1), &e10), entry(store.CreditDebit, -12*m, day(2), nil),
		}, day(45), 3 * m, 0},
		{"usage past everything runs negative", []store.CreditEntry{entry(store.CreditGrant, 1*m, day(0), &e10), entry(store.CreditDebit, -3*m, day(2), nil)}, day(3), -2 * m, 0},
		{"a negative adjustment is spent like usage", []store.CreditEntry{entry(store.CreditGrant, 10*m, day(0), &e10), entry(store.CreditAdjust, -4*m, day(1), nil)}, day(2), 6 * m, 6 * m},
		{"usage after a lapse comes from the new grant", []store.CreditEntry{
			entry(store.CreditGrant, 10*m, day(0), &e10), entry(store.CreditGrant, 10*m, day(30), &e40), entry(store.CreditDebit, -2*m, day(35), nil),
		}, day(36), 8 * m, 8 * m},
	} {
		bal, incl := credits.Replay(tc.es, tc.now)
		if bal != tc.bal || incl != tc.included {
			t.Errorf("%s: Replay = %s (included %s), want %s (included %s)", tc.name, bal, incl, tc.bal, tc.included)
		}
	}
}

func TestLedger(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "pm.db") },
		"postgres": func(t *testing.T) string { return storetest.PostgresURL(t) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			st, err := store.Open(ctx, url(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			now := day(1)
			l := &credits.Ledger{Store: st, Now: func() time.Time { return now }}
			if err := st.CreateUser(ctx, store.User{ID: "u-1", Email: "a@example.com", PasswordHash: "x", CreatedAt: t0, UpdatedAt: t0}); err != nil {
				t.Fatal(err)
			}
			// A period granted twice (a replayed webhook) is granted once.
			for i, want := range []bool{true, false} {
				var ok bool
				err := st.InTx(ctx, func(tx *store.Store) error {
					var err error
					ok, err = l.GrantPeriod(ctx, tx, "u-1", "s-1", 10*credits.Micro, day(0), day(30))
					return err
				})
				if err != nil || ok != want {
					t.Fatalf("GrantPeriod #%d = %t, %v", i, ok, err)
				}
			}
			for i, want := range []bool{true, false} {
				if ok, err := l.Debit(ctx, "u-1", 1_500_000, "usage-1", "model usage"); err != nil || ok != want {
					t.Fatalf("Debit #%d = %t, %v", i, ok, err)
				}
			}
			if err := l.Adjust(ctx, "ops", "u-1", 2*credits.Micro, "goodwill"); err != nil {
				t.Fatal(err)
			}
			for _, bad := range []struct {
				amount credits.Amount
				reason string
			}{{0, "x"}, {credits.MaxAdjust + 1, "x"}, {1, " "}} {
				var we *wire.Error
				if err := l.Adjust(ctx, "ops", "u-1", bad.amount, bad.reason); !errors.As(err, &we) || we.Code != wire.CodeInvalidArgument {
					t.Errorf("Adjust(%s, %q) = %v, want invalid_argument", bad.amount, bad.reason, err)
				}
			}
			var we *wire.Error
			if err := l.Adjust(ctx, "ops", "u-404", credits.Micro, "x"); !errors.As(err, &we) || we.Code != wire.CodeNotFound {
				t.Errorf("Adjust for a missing user = %v, want not_found", err)
			}
			stmt, err := l.Statement(ctx, "u-1")
			if err != nil || stmt.Balance != 10_500_000 || stmt.Included != 8_500_000 || len(stmt.Entries) != 3 {
				t.Fatalf("Statement = %+v, %v; want 10.50 of which 8.50 included, 3 entries", stmt, err)
			}
			audit, err := st.ListAudit(ctx, 10)
			if err != nil || len(audit) != 1 || audit[0].Action != "credits.adjust" || audit[0].Actor != "ops" {
				t.Fatalf("audit = %+v, %v", audit, err)
			}
			now = day(31) // the period's grant lapses; the adjustment stays
			if bal, err := l.Balance(ctx, "u-1"); err != nil || bal != 2*credits.Micro {
				t.Fatalf("Balance after the period = %s, %v; want 2.00", bal, err)
			}
		})
	}
}
