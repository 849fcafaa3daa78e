package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Certificate kinds.
const (
	KindRoot         = "root"
	KindIntermediate = "intermediate"
	KindServer       = "server"
	KindAdmin        = "admin"
	KindAgent        = "agent"
)

var certKinds = []string{KindRoot, KindIntermediate, KindServer, KindAdmin, KindAgent}

// ErrLastAdmin means a revocation would leave no valid (unrevoked, unexpired) admin
// certificate, and so nobody able to use the admin API.
var ErrLastAdmin = errors.New("it is the last valid admin certificate")

// Certificate records a certificate the CA issued. Rows outlive their host
// so that revocation and audit keep working.
type Certificate struct {
	Serial      string // hex
	Kind        string // one of the Kind constants
	Subject     string
	HostID      string // "" when none
	Fingerprint string // sha-256 hex
	NotBefore   time.Time
	NotAfter    time.Time
	RevokedAt   *time.Time
	// SupersededAt is when a renewal replaced this agent certificate; nil if none has.
	SupersededAt *time.Time
}

const certCols = `serial, kind, subject, host_id, fingerprint, not_before, not_after, revoked_at, superseded_at`

func scanCert(r rowScanner) (Certificate, error) {
	var (
		c    Certificate
		host sql.NullString
	)
	err := r.Scan(&c.Serial, &c.Kind, &c.Subject, &host, &c.Fingerprint,
		timeCol{&c.NotBefore}, timeCol{&c.NotAfter}, nullTimeCol{&c.RevokedAt}, nullTimeCol{&c.SupersededAt})
	if err != nil {
		return Certificate{}, err
	}
	c.HostID = host.String
	return c, nil
}

// InsertCert inserts c. It returns ErrConflict if the serial is taken and
// ErrNotFound if c.HostID names no host.
func (s *Store) InsertCert(ctx context.Context, c Certificate) error {
	if !slices.Contains(certKinds, c.Kind) {
		return fmt.Errorf("insert cert %s: unknown kind %q", c.Serial, c.Kind)
	}
	_, err := s.exec(ctx, `INSERT INTO certificates (`+certCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Serial, c.Kind, c.Subject, nullString(c.HostID), c.Fingerprint, c.NotBefore, c.NotAfter, c.RevokedAt, c.SupersededAt)
	if isForeignKey(err) {
		return fmt.Errorf("insert cert %s: host %s: %w", c.Serial, c.HostID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("insert cert %s: %w", c.Serial, dbErr(err))
	}
	return nil
}

// GetCert returns the certificate with the given serial, or ErrNotFound.
func (s *Store) GetCert(ctx context.Context, serial string) (Certificate, error) {
	c, err := scanCert(s.queryRow(ctx, `SELECT `+certCols+` FROM certificates WHERE serial = ?`, serial))
	if err != nil {
		return Certificate{}, fmt.Errorf("get cert %s: %w", serial, dbErr(err))
	}
	return c, nil
}

// ListCerts returns all certificates, newest NotBefore first.
func (s *Store) ListCerts(ctx context.Context) ([]Certificate, error) {
	certs, err := s.listCerts(ctx, ``)
	if err != nil {
		return nil, fmt.Errorf("list certs: %w", err)
	}
	return certs, nil
}

// ListAdminCerts returns every admin certificate, by name and newest NotBefore first.
func (s *Store) ListAdminCerts(ctx context.Context) ([]Certificate, error) {
	certs, err := s.listCerts(ctx, `WHERE kind = ?`, KindAdmin)
	if err != nil {
		return nil, fmt.Errorf("list admin certs: %w", err)
	}
	slices.SortStableFunc(certs, func(a, b Certificate) int {
		if a.Subject < b.Subject {
			return -1
		}
		if a.Subject > b.Subject {
			return 1
		}
		return 0
	})
	return certs, nil
}

// listCerts runs a query on the certificates table with the given WHERE clause, newest
// NotBefore first.
func (s *Store) listCerts(ctx context.Context, where string, args ...any) ([]Certificate, error) {
	rows, err := s.query(ctx, `SELECT `+certCols+` FROM certificates `+where+` ORDER BY not_before DESC, serial`, args...)
	if err != nil {
		return nil, dbErr(err)
	}
	defer rows.Close()
	var certs []Certificate
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(err)
	}
	return certs, nil
}

// RevokeCert marks the certificate revoked at at and returns it. It is
// idempotent: an already revoked certificate keeps its first revoked_at. It
// returns ErrNotFound for an unknown serial, and ErrLastAdmin, changing
// nothing, for the last admin certificate that is valid at at — checked in
// the same transaction, so two revocations at once cannot both pass.
func (s *Store) RevokeCert(ctx context.Context, serial string, at time.Time) (Certificate, error) {
	var c Certificate
	err := s.InTx(ctx, func(tx *Store) error {
		if err := tx.lockAdmins(ctx); err != nil {
			return err
		}
		old, err := scanCert(tx.queryRow(ctx, `SELECT `+certCols+` FROM certificates WHERE serial = ?`, serial))
		if err != nil {
			return dbErr(err)
		}
		if old.Kind == KindAdmin && old.RevokedAt == nil && at.Before(old.NotAfter) {
			others, err := tx.countValidAdmins(ctx, at, `serial <> ?`, serial)
			if err != nil {
				return err
			}
			if others == 0 {
				return ErrLastAdmin
			}
		}
		if err := mustAffect(tx.execCount(ctx, `UPDATE certificates SET revoked_at = COALESCE(revoked_at, ?) WHERE serial = ?`, at, serial)); err != nil {
			return err
		}
		c, err = scanCert(tx.queryRow(ctx, `SELECT `+certCols+` FROM certificates WHERE serial = ?`, serial))
		return dbErr(err)
	})
	if err != nil {
		return Certificate{}, fmt.Errorf("revoke cert %s: %w", serial, err)
	}
	return c, nil
}

// RevokeAdmin revokes at at every admin certificate of the operator called name that is not
// revoked yet, and returns them as revoked. It returns ErrNotFound when name has none, and
// ErrLastAdmin, changing nothing, when no valid admin certificate would be left but one was
// before — checked in the same transaction as the revocation.
func (s *Store) RevokeAdmin(ctx context.Context, name string, at time.Time) ([]Certificate, error) {
	var revoked []Certificate
	err := s.InTx(ctx, func(tx *Store) error {
		if err := tx.lockAdmins(ctx); err != nil {
			return err
		}
		certs, err := tx.listCerts(ctx, `WHERE kind = ? AND subject = ? AND revoked_at IS NULL`, KindAdmin, name)
		if err != nil {
			return err
		}
		if len(certs) == 0 {
			return ErrNotFound
		}
		before, err := tx.countValidAdmins(ctx, at, ``)
		if err != nil {
			return err
		}
		after, err := tx.countValidAdmins(ctx, at, `subject <> ?`, name)
		if err != nil {
			return err
		}
		if before > 0 && after == 0 {
			return ErrLastAdmin
		}
		if _, err := tx.exec(ctx, `UPDATE certificates SET revoked_at = ? WHERE kind = ? AND subject = ? AND revoked_at IS NULL`,
			at, KindAdmin, name); err != nil {
			return dbErr(err)
		}
		for i := range certs {
			certs[i].RevokedAt = &at
		}
		revoked = certs
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("revoke admin %s: %w", name, err)
	}
	return revoked, nil
}

// countValidAdmins counts the admin certificates that are unrevoked and unexpired at at and
// match the extra condition, if any.
func (s *Store) countValidAdmins(ctx context.Context, at time.Time, cond string, args ...any) (int, error) {
	q := `SELECT COUNT(*) FROM certificates WHERE kind = ? AND revoked_at IS NULL AND not_after > ?`
	if cond != "" {
		q += ` AND ` + cond
	}
	var n int
	if err := s.queryRow(ctx, q, append([]any{KindAdmin, at}, args...)...).Scan(&n); err != nil {
		return 0, dbErr(err)
	}
	return n, nil
}

// adminsLock is the PostgreSQL advisory lock that serializes changes to the set of valid
// admin certificates. On SQLite every write transaction already holds the database's one
// write lock from its start.
const adminsLock = 0x706d61646d696e73 // "pmadmins"

// lockAdmins serializes, until the transaction ends, the transactions that revoke admin
// certificates, so that the last-admin check and the revocation act as one. It must run in a
// transaction.
func (s *Store) lockAdmins(ctx context.Context) error {
	if s.dialect != DialectPostgres {
		return nil
	}
	if s.tx == nil {
		return errors.New("lock admins: not in a transaction")
	}
	if _, err := s.exec(ctx, `SELECT pg_advisory_xact_lock(?)`, int64(adminsLock)); err != nil {
		return fmt.Errorf("lock admins: %w", dbErr(err))
	}
	return nil
}

// SetHostCert records serial as the host's newest certificate, after a
// renewal. The serial is not checked against the certificates table. It
// returns ErrNotFound for an unknown host.
func (s *Store) SetHostCert(ctx context.Context, hostID, serial string) error {
	if err := mustAffect(s.execCount(ctx, `UPDATE hosts SET cert_serial = ? WHERE id = ?`, nullString(serial), hostID)); err != nil {
		return fmt.Errorf("set cert of host %s: %w", hostID, err)
	}
	return nil
}

// RenewCert records c, an agent certificate issued at now to renew the host's certificate
// over a session that uses sessionSerial, in one transaction: c is inserted and becomes the
// host's newest certificate; sessionSerial is marked superseded at now (unless it already
// was); and every other agent certificate of the host not yet revoked is revoked at now. So a
// host holds at most two valid certificates: the one its session uses and the newest. It
// returns ErrHostRevoked for a revoked host and ErrNotFound for an unknown one, changing
// nothing. Renewals of one host run one at a time.
func (s *Store) RenewCert(ctx context.Context, hostID, sessionSerial string, c Certificate, now time.Time) error {
	err := s.InTx(ctx, func(tx *Store) error {
		if c.Kind != KindAgent {
			return fmt.Errorf("certificate %s is a %s certificate, not an agent's", c.Serial, c.Kind)
		}
		if c.HostID == "" {
			c.HostID = hostID
		} else if c.HostID != hostID {
			return fmt.Errorf("certificate is for host %s, not %s", c.HostID, hostID)
		}
		// The host's row first: it queues renewals (and enrollments) of one host.
		n, err := tx.execCount(ctx, `UPDATE hosts SET cert_serial = ? WHERE id = ? AND revoked_at IS NULL`, c.Serial, hostID)
		if err != nil {
			return dbErr(err)
		}
		if n == 0 {
			if _, err := scanHost(tx.queryRow(ctx, selectHosts+` WHERE h.id = ?`, hostID)); err != nil {
				return dbErr(err)
			}
			return ErrHostRevoked
		}
		if err := tx.InsertCert(ctx, c); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `UPDATE certificates SET revoked_at = ?
			WHERE host_id = ? AND kind = ? AND revoked_at IS NULL AND serial <> ? AND serial <> ?`,
			now, hostID, KindAgent, sessionSerial, c.Serial); err != nil {
			return dbErr(err)
		}
		_, err = tx.exec(ctx, `UPDATE certificates SET superseded_at = COALESCE(superseded_at, ?)
			WHERE serial = ? AND host_id = ? AND kind = ?`, now, sessionSerial, hostID, KindAgent)
		return dbErr(err)
	})
	if err != nil {
		return fmt.Errorf("renew cert of host %s: %w", hostID, err)
	}
	return nil
}

// RetireOlderCerts revokes at now every other agent certificate of the host that is not yet
// revoked, provided serial is the host's newest certificate: the host has shown that it holds
// the newest, so it needs no other. It returns how many it revoked; a serial that is not the
// newest (or an unknown host) revokes none.
func (s *Store) RetireOlderCerts(ctx context.Context, hostID, serial string, now time.Time) (int64, error) {
	n, err := s.execCount(ctx, `UPDATE certificates SET revoked_at = ?
		WHERE host_id = ? AND kind = ? AND revoked_at IS NULL AND serial <> ?
		AND EXISTS (SELECT 1 FROM hosts WHERE id = ? AND cert_serial = ?)`,
		now, hostID, KindAgent, serial, hostID, serial)
	if err != nil {
		return 0, fmt.Errorf("retire older certs of host %s: %w", hostID, dbErr(err))
	}
	return n, nil
}

// RevokedServerSerials returns the serials of server certificates that are revoked and not
// expired at now, most recently revoked first, at most limit of them.
func (s *Store) RevokedServerSerials(ctx context.Context, now time.Time, limit int) ([]string, error) {
	rows, err := s.query(ctx, `SELECT serial FROM certificates
		WHERE kind = ? AND revoked_at IS NOT NULL AND not_after > ?
		ORDER BY revoked_at DESC, serial LIMIT ?`, KindServer, now, limit)
	if err != nil {
		return nil, fmt.Errorf("list revoked server certs: %w", dbErr(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var serial string
		if err := rows.Scan(&serial); err != nil {
			return nil, fmt.Errorf("list revoked server certs: %w", err)
		}
		out = append(out, serial)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list revoked server certs: %w", dbErr(err))
	}
	return out, nil
}
