package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/ratelimit"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Defaults of the PKI's limits, for Config fields left zero.
const (
	// DefaultCertOverlap is how long an agent certificate that a renewal replaced is still
	// accepted at new handshakes: long enough for an agent whose renewal reply was lost to
	// reconnect with the certificate it has and renew again.
	DefaultCertOverlap = 10 * time.Minute
	// DefaultEnrollRate bounds enrollment requests per minute from all sources together.
	DefaultEnrollRate = 600
	// DefaultEnrollRatePerAddress bounds enrollment requests per minute from one source
	// address (one IPv4 address, one IPv6 /64).
	DefaultEnrollRatePerAddress = 20
)

// Renewal limit per host: a bucket of renewBurst, refilled one per agent certificate
// lifetime / renewRefills. An agent renews at 2/3 of its certificate's life and, if that
// fails (its save failed, the reply was lost), again at each heartbeat: the burst covers a
// few such retries at once, and after them one more comes back every ttl/24 (an hour for
// 24 h certificates), so the third of the life that is left still holds about eight more
// tries. A host that renews without end gets at most renewBurst + renewRefills certificates
// a lifetime — and each one retires the one before.
const (
	renewBurst   = 3
	renewRefills = 24
	// maxLimiterKeys bounds the buckets one limiter holds (see ratelimit.Keyed).
	maxLimiterKeys = 100_000
)

// limiters are the Fleet's rate limits.
type limiters struct {
	renew      *ratelimit.Keyed // by host id
	enroll     *ratelimit.Keyed // one key: every source together
	enrollAddr *ratelimit.Keyed // by source address
}

func newLimiters(cfg Config) limiters {
	return limiters{
		renew:      ratelimit.New(ratelimit.Limit{Burst: renewBurst, Every: max(cfg.AgentCertTTL/renewRefills, time.Second)}, maxLimiterKeys),
		enroll:     ratelimit.New(perMinute(cfg.EnrollRate), 1),
		enrollAddr: ratelimit.New(perMinute(cfg.EnrollRatePerAddress), maxLimiterKeys),
	}
}

// perMinute is a limit of n a minute that allows all n at once.
func perMinute(n int) ratelimit.Limit {
	return ratelimit.Limit{Burst: n, Every: time.Minute / time.Duration(n)}
}

// rateLimited is the refusal of a request over a limit: 429 with Retry-After.
func rateLimited(wait time.Duration, format string, args ...any) error {
	e := wire.Errorf(wire.CodeRateLimited, format, args...)
	e.RetryAfter = max(wait, time.Second)
	e.Message += fmt.Sprintf("; try again in %s", e.RetryAfter.Round(time.Second))
	return e
}

// sourceKey is the rate-limit key of a request's remote address: the IP, or its /64 for
// IPv6, since one machine commonly holds a whole /64.
func sourceKey(remote string) string {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return remote
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// admitEnrollment takes a token from the source address's bucket and then from the overall
// one, or says when to come back.
func (f *Fleet) admitEnrollment(remote string, now time.Time) error {
	src := sourceKey(remote)
	if ok, wait := f.limits.enrollAddr.Allow(src, now); !ok {
		return rateLimited(wait, "too many enrollments from %s", src)
	}
	if ok, wait := f.limits.enroll.Allow("", now); !ok {
		return rateLimited(wait, "too many enrollments")
	}
	return nil
}

// retireOlder revokes the host's other certificates once a session opened with its newest
// certificate (newest is the host's record of it): the host has shown it holds it, so it
// needs no older one. It writes once per host and certificate in this process's life, not at
// every reconnect. A failure is logged; the older certificates then stop at their overlap's
// end anyway.
func (f *Fleet) retireOlder(ctx context.Context, log *slog.Logger, hostID, serial, newest string) {
	if serial != newest {
		return
	}
	f.mu.Lock()
	done := f.retired[hostID] == serial
	f.mu.Unlock()
	if done {
		return
	}
	now := f.cfg.Now().UTC()
	var n int64
	err := f.store.InTx(ctx, func(tx *store.Store) error {
		var err error
		if n, err = tx.RetireOlderCerts(ctx, hostID, serial, now); err != nil || n == 0 {
			return err
		}
		return audit(ctx, tx, now, "host:"+hostID, "cert.retire", serial,
			fmt.Sprintf("%d older agent certificates revoked: the host connected with its newest", n))
	})
	if err != nil {
		log.Warn("retire older certificates", "serial", serial, "error", err.Error())
		return
	}
	f.mu.Lock()
	f.retired[hostID] = serial
	f.mu.Unlock()
	if n > 0 {
		log.Info("older certificates retired", "serial", serial, "retired", n)
	}
}

// SetRevokedServers sets the serials of revoked server certificates that heartbeat replies
// carry to agents (at most wire.MaxRevokedServers). pmd's server certificate loop keeps it
// current, leaving out the certificate it serves itself.
func (f *Fleet) SetRevokedServers(serials []string) {
	if len(serials) > wire.MaxRevokedServers {
		serials = serials[:wire.MaxRevokedServers]
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revokedServers = slices.Clone(serials)
}

// RevokedServers is what SetRevokedServers last set.
func (f *Fleet) RevokedServers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.revokedServers
}

// certStatus is a certificate's status at now, as the admin API shows it.
func certStatus(c store.Certificate, now time.Time) string {
	switch {
	case c.RevokedAt != nil:
		return wire.CertRevoked
	case !now.Before(c.NotAfter):
		return wire.CertExpired
	case c.SupersededAt != nil:
		return wire.CertSuperseded
	}
	return wire.CertValid
}

// CertToWire converts a stored certificate for the admin API, with its status at now.
func CertToWire(c store.Certificate, now time.Time) wire.Certificate {
	return wire.Certificate{
		Serial: c.Serial, Kind: c.Kind, Subject: c.Subject, HostID: c.HostID,
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, RevokedAt: c.RevokedAt,
		SupersededAt: c.SupersededAt, Status: certStatus(c, now),
	}
}
