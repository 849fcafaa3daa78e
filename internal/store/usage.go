package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// UsageRecord is one model call as pmd committed it: what the host metered, whose bot it was
// when it arrived, and what it cost.
type UsageRecord struct {
	// ID is the host-made record id; a record is kept once, however often it is sent.
	ID     string
	HostID string
	BotID  string
	// Owner is the bot's owner when the record arrived; Kind is "" for a bot pmd no longer
	// knew (deleted since).
	Owner     Owner
	Provider  string
	Model     string
	API       string
	Stream    bool
	Status    int
	Outcome   string
	Tokens    wire.Tokens
	Estimated bool
	BYOK      bool
	// Cost is what the call cost at pmd's prices and Debited what of it was taken from the
	// owner's credits, both in millionths of a credit.
	Cost, Debited int64
	At            time.Time // when the call was made, by the host's clock
	Millis        int64
	RecordedAt    time.Time // when pmd committed it
}

const usageCols = `id, host_id, bot_id, owner_kind, owner_id, provider, model, api, stream, status, outcome,
	input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, estimated, byok, cost, debited, at, ms, recorded_at`

// usageColCount is the number of columns in usageCols.
const usageColCount = 22

// usageChunk bounds the rows of one INSERT: 500 × 22 parameters stays well under both
// SQLite's (32766) and PostgreSQL's (65535) limits.
const usageChunk = 500

// InsertUsage inserts the records whose ids are not yet in the store and returns the ids it
// inserted; records already there (a batch sent again) are left as they were. Run it in the
// transaction that debits the records' cost, so both commit or neither.
func (s *Store) InsertUsage(ctx context.Context, recs []UsageRecord) (map[string]bool, error) {
	inserted := make(map[string]bool, len(recs))
	for len(recs) > 0 {
		n := min(len(recs), usageChunk)
		if err := s.insertUsage(ctx, recs[:n], inserted); err != nil {
			return nil, fmt.Errorf("insert usage records: %w", err)
		}
		recs = recs[n:]
	}
	return inserted, nil
}

func (s *Store) insertUsage(ctx context.Context, recs []UsageRecord, inserted map[string]bool) error {
	var q strings.Builder
	q.WriteString(`INSERT INTO usage_records (` + usageCols + `) VALUES `)
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", usageColCount), ", ") + ")"
	args := make([]any, 0, len(recs)*usageColCount)
	for i, r := range recs {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(row)
		args = append(args, r.ID, r.HostID, r.BotID, r.Owner.Kind, r.Owner.ID, r.Provider, r.Model, r.API, r.Stream, r.Status, r.Outcome,
			r.Tokens.Input, r.Tokens.Output, r.Tokens.CacheRead, r.Tokens.CacheWrite, r.Estimated, r.BYOK, r.Cost, r.Debited,
			r.At, r.Millis, r.RecordedAt)
	}
	q.WriteString(` ON CONFLICT (id) DO NOTHING RETURNING id`)
	rows, err := s.w.QueryContext(ctx, rebind(s.dialect, q.String()), s.args(args)...)
	if err != nil {
		return dbErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		inserted[id] = true
	}
	return dbErr(rows.Err())
}

// UsageBot is where a bot runs and whom it belongs to, as usage needs them.
type UsageBot struct {
	HostID string // "" while it waits for a host
	Owner  Owner
}

// UsageBots returns the host and owner of each of ids that is a bot; ids of no bot are left
// out.
func (s *Store) UsageBots(ctx context.Context, ids []string) (map[string]UsageBot, error) {
	out := make(map[string]UsageBot, len(ids))
	err := s.inChunks(ctx, ids, `SELECT id, host_id, owner_kind, owner_id FROM bots WHERE id IN `, func(r rowScanner) error {
		var id string
		var host *string
		var b UsageBot
		if err := r.Scan(&id, &host, &b.Owner.Kind, &b.Owner.ID); err != nil {
			return err
		}
		if host != nil {
			b.HostID = *host
		}
		out[id] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up bots: %w", err)
	}
	return out, nil
}

// ExistingUsers returns which of ids are users.
func (s *Store) ExistingUsers(ctx context.Context, ids []string) (map[string]bool, error) {
	out := make(map[string]bool, len(ids))
	err := s.inChunks(ctx, ids, `SELECT id FROM users WHERE id IN `, func(r rowScanner) error {
		var id string
		if err := r.Scan(&id); err != nil {
			return err
		}
		out[id] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up users: %w", err)
	}
	return out, nil
}

// inChunks runs prefix followed by "(?, ?, …)" for ids, some hundreds at a time, and hands
// each row to scan.
func (s *Store) inChunks(ctx context.Context, ids []string, prefix string, scan func(rowScanner) error) error {
	for len(ids) > 0 {
		n := min(len(ids), 500)
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		ids = ids[n:]
		rows, err := s.query(ctx, prefix+"("+strings.TrimSuffix(strings.Repeat("?, ", n), ", ")+")", args...)
		if err != nil {
			return dbErr(err)
		}
		for rows.Next() {
			if err := scan(rows); err != nil {
				rows.Close()
				return err
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return dbErr(err)
		}
	}
	return nil
}

// UsageTotal sums usage records: calls, errors (calls the provider answered with an error),
// calls whose tokens were estimated, tokens, cost and what was debited, in millionths of a
// credit. Which fields name the group depends on the report.
type UsageTotal struct {
	Day      string // YYYY-MM-DD (UTC), in per-day reports
	Owner    Owner
	Email    string // the customer's, when the owner is one
	BotID    string
	BotName  string // "" for a bot deleted since
	Provider string
	Model    string

	Calls, Errors, Estimated int64
	Tokens                   wire.Tokens
	Cost, Debited            int64
}

// usageSums are the summed columns of a report, in UsageTotal's order.
const usageSums = `COUNT(*),
	COALESCE(SUM(CASE WHEN u.outcome = 'error' THEN 1 ELSE 0 END), 0),
	COALESCE(SUM(CASE WHEN u.estimated THEN 1 ELSE 0 END), 0),
	CAST(COALESCE(SUM(u.input_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(u.output_tokens), 0) AS BIGINT),
	CAST(COALESCE(SUM(u.cache_read_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(u.cache_write_tokens), 0) AS BIGINT),
	CAST(COALESCE(SUM(u.cost), 0) AS BIGINT), CAST(COALESCE(SUM(u.debited), 0) AS BIGINT)`

func sumDest(t *UsageTotal) []any {
	return []any{&t.Calls, &t.Errors, &t.Estimated, &t.Tokens.Input, &t.Tokens.Output, &t.Tokens.CacheRead, &t.Tokens.CacheWrite, &t.Cost, &t.Debited}
}

// UsageTop sums the usage of [since, until) by owner, bot, provider and model, the costliest
// first; limit > 0 keeps that many rows.
func (s *Store) UsageTop(ctx context.Context, since, until time.Time, limit int) ([]UsageTotal, error) {
	q := `SELECT u.owner_kind, u.owner_id, COALESCE(MAX(us.email), ''), u.bot_id, COALESCE(MAX(b.name), ''), u.provider, u.model, ` + usageSums + `
		FROM usage_records u
		LEFT JOIN bots b ON b.id = u.bot_id
		LEFT JOIN users us ON u.owner_kind = 'customer' AND us.id = u.owner_id
		WHERE u.at >= ? AND u.at < ?
		GROUP BY u.owner_kind, u.owner_id, u.bot_id, u.provider, u.model
		ORDER BY 15 DESC, 8 DESC, u.owner_kind, u.owner_id, u.bot_id, u.provider, u.model`
	args := []any{since, until}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	out, err := s.usageRows(ctx, q, args, func(t *UsageTotal) []any {
		return append([]any{&t.Owner.Kind, &t.Owner.ID, &t.Email, &t.BotID, &t.BotName, &t.Provider, &t.Model}, sumDest(t)...)
	})
	if err != nil {
		return nil, fmt.Errorf("usage report: %w", err)
	}
	return out, nil
}

// UsageByDay sums one bot's usage of [since, until) by day (UTC), provider and model, oldest
// day first.
func (s *Store) UsageByDay(ctx context.Context, botID string, since, until time.Time) ([]UsageTotal, error) {
	day := `substr(u.at, 1, 10)`
	if s.dialect == DialectPostgres {
		day = `to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD')`
	}
	q := `SELECT ` + day + `, u.owner_kind, u.owner_id, COALESCE(MAX(us.email), ''), u.bot_id, COALESCE(MAX(b.name), ''), u.provider, u.model, ` + usageSums + `
		FROM usage_records u
		LEFT JOIN bots b ON b.id = u.bot_id
		LEFT JOIN users us ON u.owner_kind = 'customer' AND us.id = u.owner_id
		WHERE u.bot_id = ? AND u.at >= ? AND u.at < ?
		GROUP BY 1, u.owner_kind, u.owner_id, u.bot_id, u.provider, u.model
		ORDER BY 1, u.provider, u.model, u.owner_kind, u.owner_id`
	out, err := s.usageRows(ctx, q, []any{botID, since, until}, func(t *UsageTotal) []any {
		return append([]any{&t.Day, &t.Owner.Kind, &t.Owner.ID, &t.Email, &t.BotID, &t.BotName, &t.Provider, &t.Model}, sumDest(t)...)
	})
	if err != nil {
		return nil, fmt.Errorf("usage of bot %s by day: %w", botID, err)
	}
	return out, nil
}

// UsageOfOwner sums an owner's usage since a time, every bot and model together.
func (s *Store) UsageOfOwner(ctx context.Context, o Owner, since time.Time) (UsageTotal, error) {
	t := UsageTotal{Owner: o}
	err := s.queryRow(ctx, `SELECT `+usageSums+` FROM usage_records u WHERE u.owner_kind = ? AND u.owner_id = ? AND u.at >= ?`,
		o.Kind, o.ID, since).Scan(sumDest(&t)...)
	if err != nil {
		return UsageTotal{}, fmt.Errorf("usage of %s %s: %w", o.Kind, o.ID, dbErr(err))
	}
	return t, nil
}

func (s *Store) usageRows(ctx context.Context, q string, args []any, dest func(*UsageTotal) []any) ([]UsageTotal, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, dbErr(err)
	}
	defer rows.Close()
	var out []UsageTotal
	for rows.Next() {
		var t UsageTotal
		if err := rows.Scan(dest(&t)...); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, dbErr(rows.Err())
}
