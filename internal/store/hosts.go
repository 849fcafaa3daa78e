package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Host is a machine that runs pmagent. Other tables (bots, jobs, usage…)
// reference it by ID.
type Host struct {
	ID         string
	Name       string // unique
	CreatedAt  time.Time
	EnrolledAt *time.Time
	LastSeenAt *time.Time
	RevokedAt  *time.Time
	Draining   bool
	Facts      []byte // JSON blob of the agent's facts, nil when none
	SessionID  string // "" when no tunnel session is open
	CertSerial string // newest certificate issued to the host, "" if none
	// CertExpiresAt is that certificate's end, read with the host; CreateHost ignores it.
	CertExpiresAt *time.Time
	// MemoryBytes is the memory the host reported when it enrolled, 0 while unknown. It bounds
	// the capacity the host may declare.
	MemoryBytes int64
	// CapacityBots and CapacityMemoryBytes are an operator's capacity limit; 0 means none.
	CapacityBots        int
	CapacityMemoryBytes int64
	// DedicatedBot is the bot the host runs alone, "" for a shared host. It is set when the
	// host enrolls with a token made for that bot, and stays when the bot is gone.
	DedicatedBot string
}

const hostCols = `id, name, created_at, enrolled_at, last_seen_at, revoked_at, draining, facts, session_id, cert_serial,
	memory_bytes, capacity_bots, capacity_memory_bytes, dedicated_bot`

// selectHosts reads hosts with their newest certificate's end in one query.
const selectHosts = `SELECT h.id, h.name, h.created_at, h.enrolled_at, h.last_seen_at, h.revoked_at, h.draining,
	h.facts, h.session_id, h.cert_serial, c.not_after, h.memory_bytes, h.capacity_bots, h.capacity_memory_bytes,
	h.dedicated_bot
	FROM hosts h LEFT JOIN certificates c ON c.serial = h.cert_serial`

type rowScanner interface{ Scan(dest ...any) error }

func scanHost(r rowScanner) (Host, error) {
	var (
		h                       Host
		session, certSer, ded   sql.NullString
		facts                   []byte
		memory, capBots, capMem sql.NullInt64
	)
	err := r.Scan(&h.ID, &h.Name, timeCol{&h.CreatedAt}, nullTimeCol{&h.EnrolledAt},
		nullTimeCol{&h.LastSeenAt}, nullTimeCol{&h.RevokedAt}, &h.Draining, &facts, &session, &certSer,
		nullTimeCol{&h.CertExpiresAt}, &memory, &capBots, &capMem, &ded)
	if err != nil {
		return Host{}, err
	}
	if len(facts) > 0 {
		h.Facts = facts
	}
	h.SessionID, h.CertSerial, h.DedicatedBot = session.String, certSer.String, ded.String
	h.MemoryBytes, h.CapacityBots, h.CapacityMemoryBytes = memory.Int64, int(capBots.Int64), capMem.Int64
	return h, nil
}

// CreateHost inserts h. It returns ErrConflict if the ID or name is taken.
func (s *Store) CreateHost(ctx context.Context, h Host) error {
	_, err := s.exec(ctx, `INSERT INTO hosts (`+hostCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		h.ID, h.Name, h.CreatedAt, h.EnrolledAt, h.LastSeenAt, h.RevokedAt, h.Draining,
		nullBytes(h.Facts), nullString(h.SessionID), nullString(h.CertSerial),
		nullPositive(h.MemoryBytes), nullPositive(int64(h.CapacityBots)), nullPositive(h.CapacityMemoryBytes),
		nullString(h.DedicatedBot))
	if err != nil {
		return fmt.Errorf("create host %s: %w", h.ID, dbErr(err))
	}
	return nil
}

// GetHost returns the host with the given ID, or ErrNotFound.
func (s *Store) GetHost(ctx context.Context, id string) (Host, error) {
	h, err := scanHost(s.queryRow(ctx, selectHosts+` WHERE h.id = ?`, id))
	if err != nil {
		return Host{}, fmt.Errorf("get host %s: %w", id, dbErr(err))
	}
	return h, nil
}

// GetHostByName returns the host with the given name, or ErrNotFound.
func (s *Store) GetHostByName(ctx context.Context, name string) (Host, error) {
	h, err := scanHost(s.queryRow(ctx, selectHosts+` WHERE h.name = ?`, name))
	if err != nil {
		return Host{}, fmt.Errorf("get host by name %s: %w", name, dbErr(err))
	}
	return h, nil
}

// ListHosts returns all hosts ordered by name.
func (s *Store) ListHosts(ctx context.Context) ([]Host, error) {
	rows, err := s.query(ctx, selectHosts+` ORDER BY h.name`)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", dbErr(err))
	}
	defer rows.Close()
	var hosts []Host
	for rows.Next() {
		h, err := scanHost(rows)
		if err != nil {
			return nil, fmt.Errorf("list hosts: %w", err)
		}
		hosts = append(hosts, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	return hosts, nil
}

// SetSession records that the host opened tunnel session sessionID at at:
// it sets session_id and last_seen_at. It returns ErrNotFound for an unknown
// host.
func (s *Store) SetSession(ctx context.Context, hostID, sessionID string, at time.Time) error {
	err := mustAffect(s.execCount(ctx, `UPDATE hosts SET session_id = ?, last_seen_at = ? WHERE id = ?`,
		nullString(sessionID), at, hostID))
	if err != nil {
		return fmt.Errorf("set session of host %s: %w", hostID, err)
	}
	return nil
}

// ClearSession clears the host's session only if it is still sessionID, so
// a stale disconnect cannot clear a newer session. It reports whether it
// cleared it; an unknown host reports false.
func (s *Store) ClearSession(ctx context.Context, hostID, sessionID string) (bool, error) {
	n, err := s.execCount(ctx, `UPDATE hosts SET session_id = NULL WHERE id = ? AND session_id = ?`, hostID, sessionID)
	if err != nil {
		return false, fmt.Errorf("clear session of host %s: %w", hostID, dbErr(err))
	}
	return n > 0, nil
}

// ClearAllSessions clears every host's session; pmd calls it at start-up,
// when no tunnel can be open yet.
func (s *Store) ClearAllSessions(ctx context.Context) error {
	if _, err := s.exec(ctx, `UPDATE hosts SET session_id = NULL WHERE session_id IS NOT NULL`); err != nil {
		return fmt.Errorf("clear all sessions: %w", dbErr(err))
	}
	return nil
}

// RecordHeartbeat sets the host's last_seen_at and facts (nil or empty
// facts clear them). memory is the memory the facts report: it becomes the
// host's MemoryBytes only if that is still unknown (a host enrolled before
// pmd recorded it), and is ignored otherwise. It returns ErrNotFound for an
// unknown host.
func (s *Store) RecordHeartbeat(ctx context.Context, hostID string, at time.Time, facts []byte, memory int64) error {
	err := mustAffect(s.execCount(ctx, `UPDATE hosts SET last_seen_at = ?, facts = ?, memory_bytes = COALESCE(memory_bytes, ?) WHERE id = ?`,
		at, nullBytes(facts), nullPositive(memory), hostID))
	if err != nil {
		return fmt.Errorf("record heartbeat of host %s: %w", hostID, err)
	}
	return nil
}

// RevokeHost atomically marks the host revoked at at, clears its session,
// revokes every certificate of the host not yet revoked and deletes its
// enrollment tokens. A host that is already revoked keeps its first
// revoked_at. It returns ErrNotFound for an unknown host.
func (s *Store) RevokeHost(ctx context.Context, hostID string, at time.Time) error {
	err := s.InTx(ctx, func(tx *Store) error {
		err := mustAffect(tx.execCount(ctx, `UPDATE hosts SET revoked_at = COALESCE(revoked_at, ?), session_id = NULL WHERE id = ?`,
			at, hostID))
		if err != nil {
			return err
		}
		if _, err = tx.exec(ctx, `UPDATE certificates SET revoked_at = ? WHERE host_id = ? AND revoked_at IS NULL`, at, hostID); err != nil {
			return dbErr(err)
		}
		_, err = tx.exec(ctx, `DELETE FROM tokens WHERE host_id = ?`, hostID)
		return dbErr(err)
	})
	if err != nil {
		return fmt.Errorf("revoke host %s: %w", hostID, err)
	}
	return nil
}

// SetDraining sets whether the host is draining. It returns ErrNotFound for
// an unknown host.
func (s *Store) SetDraining(ctx context.Context, hostID string, draining bool) error {
	if err := mustAffect(s.execCount(ctx, `UPDATE hosts SET draining = ? WHERE id = ?`, draining, hostID)); err != nil {
		return fmt.Errorf("set draining of host %s: %w", hostID, err)
	}
	return nil
}

// DeleteHost deletes the host and its tokens. Its certificates stay, with
// no host, so revocation checks and audit keep working. It returns
// ErrNotFound for an unknown host.
func (s *Store) DeleteHost(ctx context.Context, hostID string) error {
	if err := mustAffect(s.execCount(ctx, `DELETE FROM hosts WHERE id = ?`, hostID)); err != nil {
		return fmt.Errorf("delete host %s: %w", hostID, err)
	}
	return nil
}

// SetHostMemory records the memory the host reported when it enrolled; 0
// means unknown. It returns ErrNotFound for an unknown host.
func (s *Store) SetHostMemory(ctx context.Context, hostID string, memory int64) error {
	if err := mustAffect(s.execCount(ctx, `UPDATE hosts SET memory_bytes = ? WHERE id = ?`, nullPositive(memory), hostID)); err != nil {
		return fmt.Errorf("set memory of host %s: %w", hostID, err)
	}
	return nil
}

// SetHostCapacity sets an operator's capacity limit on the host; 0 clears
// that part of it. It returns ErrNotFound for an unknown host.
func (s *Store) SetHostCapacity(ctx context.Context, hostID string, bots int, memory int64) error {
	err := mustAffect(s.execCount(ctx, `UPDATE hosts SET capacity_bots = ?, capacity_memory_bytes = ? WHERE id = ?`,
		nullPositive(int64(bots)), nullPositive(memory), hostID))
	if err != nil {
		return fmt.Errorf("set capacity of host %s: %w", hostID, err)
	}
	return nil
}

// nullPositive stores zero or less as NULL.
func nullPositive(n int64) any {
	if n <= 0 {
		return nil
	}
	return n
}
