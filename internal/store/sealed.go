package store

import (
	"context"
	"fmt"
	"log/slog"
)

// SealedValue is one value sealed with the master key: where it is and its ciphertext. The
// store never sees the plaintext; it lists these so the master key can be rotated.
type SealedValue struct {
	Table  string // e.g. "bots"
	Column string // e.g. "secrets"
	Row    string // the row's primary key
	Value  string // the sealed value, "v1:<key id>:…"
}

// String names the value's place, never its content: `bots row "b-1" column secrets`.
func (v SealedValue) String() string {
	return fmt.Sprintf("%s row %q column %s", v.Table, v.Row, v.Column)
}

// LogValue implements slog.LogValuer: the place, not the ciphertext.
func (v SealedValue) LogValue() slog.Value { return slog.StringValue(v.String()) }

// sealedColumns is every column that holds a value sealed with the master key, and the
// primary key of its table. A new sealed column must be listed here, or master key rotation
// would leave it under a key that is then dropped; the store suite fails on a column named
// like a secret that is missing.
var sealedColumns = []struct{ table, key, column string }{
	{"key_pairs", "name", "key_sealed"},
	{"bots", "id", "secrets"},
	{"assistants", "user_id", "secrets"},
}

// ListSealed returns every sealed value in the database, table by table in a fixed order and
// by primary key within a table. Call it in [Store.InTx] with [Store.ReplaceSealed] to
// re-seal them all at once.
func (s *Store) ListSealed(ctx context.Context) ([]SealedValue, error) {
	var out []SealedValue
	for _, c := range sealedColumns {
		// An empty value seals nothing: the root's key pair row when the root key is kept
		// offline.
		rows, err := s.query(ctx, `SELECT `+c.key+`, `+c.column+` FROM `+c.table+` WHERE `+c.column+` <> '' ORDER BY `+c.key)
		if err != nil {
			return nil, fmt.Errorf("list sealed values in %s: %w", c.table, dbErr(err))
		}
		for rows.Next() {
			v := SealedValue{Table: c.table, Column: c.column}
			if err := rows.Scan(&v.Row, &v.Value); err != nil {
				rows.Close()
				return nil, fmt.Errorf("list sealed values in %s: %w", c.table, err)
			}
			out = append(out, v)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("list sealed values in %s: %w", c.table, err)
		}
	}
	return out, nil
}

// ReplaceSealed stores sealed in place of v, provided the row still holds v.Value: a row
// that is gone or was changed since v was read is ErrConflict and is left alone. v must come
// from [Store.ListSealed]; other places are refused.
func (s *Store) ReplaceSealed(ctx context.Context, v SealedValue, sealed string) error {
	for _, c := range sealedColumns {
		if c.table != v.Table || c.column != v.Column {
			continue
		}
		n, err := s.execCount(ctx, `UPDATE `+c.table+` SET `+c.column+` = ? WHERE `+c.key+` = ? AND `+c.column+` = ?`,
			sealed, v.Row, v.Value)
		if err != nil {
			return fmt.Errorf("replace sealed value of %s: %w", v, dbErr(err))
		}
		if n == 0 {
			return fmt.Errorf("replace sealed value of %s: the row is gone or changed since it was read: %w", v, ErrConflict)
		}
		return nil
	}
	return fmt.Errorf("replace sealed value of %s: %s.%s is not a sealed column", v, v.Table, v.Column)
}
