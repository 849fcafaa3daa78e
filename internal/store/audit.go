package store

import (
	"context"
	"fmt"
	"time"
)

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	ID     int64 // assigned by AppendAudit; ignored on input
	Time   time.Time
	Actor  string
	Action string
	Target string
	Detail string
}

// defaultAuditLimit is what ListAudit returns when asked for limit <= 0.
const defaultAuditLimit = 100

// AppendAudit appends e to the audit log and returns its ID. IDs grow with
// every append.
func (s *Store) AppendAudit(ctx context.Context, e AuditEntry) (int64, error) {
	var id int64
	err := s.writeRow(ctx, `INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?) RETURNING id`,
		e.Time, e.Actor, e.Action, e.Target, e.Detail).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("append audit %s: %w", e.Action, dbErr(err))
	}
	return id, nil
}

// ListAudit returns up to limit entries, most recently appended first;
// limit <= 0 means 100.
func (s *Store) ListAudit(ctx context.Context, limit int) ([]AuditEntry, error) {
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	rows, err := s.query(ctx, `SELECT id, at, actor, action, target, detail FROM audit_log ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", dbErr(err))
	}
	defer rows.Close()
	var entries []AuditEntry
	for rows.Next() {
		var e AuditEntry
		if err := rows.Scan(&e.ID, timeCol{&e.Time}, &e.Actor, &e.Action, &e.Target, &e.Detail); err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return entries, nil
}
