package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/accounts"
	"github.com/pocketmolt/pocketmolt/internal/mail"
	"github.com/pocketmolt/pocketmolt/internal/ratelimit"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/store/storetest"
)

// passwordResult is what BenchmarkCheckout/passwords measured.
type passwordResult struct {
	// hashes is how many hashes each goroutine made; single and pair are hashes per second
	// with one goroutine and with two at once.
	hashes       int
	single, pair float64
	dbs          []loginResult
}

// loginResult holds sorted latencies of accounts.Service on one database.
type loginResult struct {
	db string
	// login is the right password (a session made), wrong a wrong one, unknown an email
	// with no account (verified against the dummy hash), signup a new account.
	login, wrong, unknown, signup []time.Duration
}

const checkoutPassword = "violet-harbour-lantern"

// measurePasswords times argon2id with accounts.DefaultParams — hashes hashes on one
// goroutine, then hashes on each of two at once — and then logins logins of each kind through
// accounts.Service on SQLite, and on PostgreSQL when PM_TEST_POSTGRES_URL is set.
func measurePasswords(ctx context.Context, tb testing.TB, hashes, logins int) (passwordResult, error) {
	res := passwordResult{hashes: hashes}
	hash := func() error {
		_, err := accounts.HashPassword(checkoutPassword, accounts.DefaultParams)
		return err
	}
	// One hash first, outside the measurement: the first allocation of its 24 MiB.
	if err := hash(); err != nil {
		return res, err
	}
	began := time.Now()
	for range hashes {
		if err := hash(); err != nil {
			return res, err
		}
	}
	res.single = float64(hashes) / time.Since(began).Seconds()

	var wg sync.WaitGroup
	errs := make([]error, 2)
	began = time.Now()
	for g := range 2 {
		wg.Go(func() {
			for range hashes {
				if err := hash(); err != nil {
					errs[g] = err
					return
				}
			}
		})
	}
	wg.Wait()
	res.pair = float64(2*hashes) / time.Since(began).Seconds()
	if err := errors.Join(errs...); err != nil {
		return res, err
	}

	dbs := []struct{ name, url string }{{"SQLite", "sqlite:" + filepath.Join(tb.TempDir(), "accounts.db")}}
	if os.Getenv("PM_TEST_POSTGRES_URL") != "" {
		dbs = append(dbs, struct{ name, url string }{"PostgreSQL", storetest.PostgresURL(tb)})
	}
	for _, db := range dbs {
		lr, err := measureLogins(ctx, db.url, logins)
		if err != nil {
			return res, fmt.Errorf("%s: %w", db.name, err)
		}
		lr.db = db.name
		res.dbs = append(res.dbs, lr)
	}
	return res, nil
}

// measureLogins signs up logins customers and times, interleaved, a login with the right
// password, one with a wrong password and one naming an unknown email, logins times each.
// The rate limits are raised: they are not what is measured, and a benchmark's logins all
// come from one address in a few seconds.
func measureLogins(ctx context.Context, dbURL string, logins int) (res loginResult, err error) {
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		return res, err
	}
	defer st.Close()
	discard := slog.New(slog.NewJSONHandler(io.Discard, nil))
	open := ratelimit.Limit{Burst: 1 << 20, Every: time.Millisecond}
	svc, err := accounts.New(accounts.Config{
		Store: st, Mailer: &mail.Log{Logger: discard}, Logger: discard, PublicURL: "http://127.0.0.1:8080",
		Limits: accounts.Limits{LoginPerAccount: open, LoginPerIP: open, SignupPerIP: open, ResetPerIP: open, ResetMailsPerAccount: open},
	})
	if err != nil {
		return res, err
	}
	const ip = "192.0.2.10"
	emails := make([]string, logins)
	for i := range emails {
		emails[i] = fmt.Sprintf("login%03d@example.com", i)
		began := time.Now()
		if _, err := svc.Signup(ctx, emails[i], checkoutPassword, ip); err != nil {
			return res, fmt.Errorf("sign up %s: %w", emails[i], err)
		}
		res.signup = append(res.signup, time.Since(began))
	}
	// One of each kind first, outside the measurement.
	for i := range logins + 1 {
		email := emails[max(i-1, 0)]
		began := time.Now()
		sess, err := svc.Login(ctx, email, checkoutPassword, ip)
		d := time.Since(began)
		if err != nil || sess.Token == "" {
			return res, fmt.Errorf("log %s in: %v", email, err)
		}
		if i > 0 {
			res.login = append(res.login, d)
		}
		began = time.Now()
		_, err = svc.Login(ctx, email, checkoutPassword+"x", ip)
		d = time.Since(began)
		if !errors.Is(err, accounts.ErrBadCredentials) {
			return res, fmt.Errorf("log %s in with a wrong password: %v, want %v", email, err, accounts.ErrBadCredentials)
		}
		if i > 0 {
			res.wrong = append(res.wrong, d)
		}
		began = time.Now()
		_, err = svc.Login(ctx, fmt.Sprintf("nobody%03d@example.com", i), checkoutPassword, ip)
		d = time.Since(began)
		if !errors.Is(err, accounts.ErrBadCredentials) {
			return res, fmt.Errorf("log an unknown email in: %v, want %v", err, accounts.ErrBadCredentials)
		}
		if i > 0 {
			res.unknown = append(res.unknown, d)
		}
	}
	for _, ds := range [][]time.Duration{res.login, res.wrong, res.unknown, res.signup} {
		slices.Sort(ds)
	}
	return res, nil
}

func writePasswordTable(w io.Writer, r passwordResult, load0, load1 string) {
	p := accounts.DefaultParams
	fmt.Fprintf(w, "Passwords: argon2id with accounts.DefaultParams (m=%d MiB, t=%d, p=%d), %d CPUs, load average %s → %s:\n\n",
		p.Memory/1024, p.Time, p.Threads, runtime.NumCPU(), load0, load1)
	fmt.Fprintln(w, "| goroutines | hashes | hashes/s | ms per hash (each goroutine) |")
	fmt.Fprintln(w, "| ---: | ---: | ---: | ---: |")
	fmt.Fprintf(w, "| 1 | %d | %.1f | %.1f |\n", r.hashes, r.single, 1000/r.single)
	fmt.Fprintf(w, "| 2 | %d | %.1f | %.1f |\n", 2*r.hashes, r.pair, 2000/r.pair)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| accounts.Service (ms) | database | n | p50 | p90 | max |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: |")
	for _, db := range r.dbs {
		for _, row := range []struct {
			name string
			ds   []time.Duration
		}{
			{"Login, right password (session made)", db.login},
			{"Login, wrong password", db.wrong},
			{"Login, unknown email", db.unknown},
			{"Signup", db.signup},
		} {
			fmt.Fprintf(w, "| %s | %s | %d | %.1f | %.1f | %.1f |\n", row.name, db.db, len(row.ds),
				ms(percentile(row.ds, 0.5)), ms(percentile(row.ds, 0.9)), ms(percentile(row.ds, 1)))
		}
	}
}
