package store

import (
	"database/sql"
	"io/fs"
	"log/slog"
	"strings"
	"testing"

	"github.com/pressly/goose/v3"
)

// TestHostCapacityMigration: hosts recorded before migration 00004 keep everything they had,
// with no memory known and no operator limit; the migration goes down cleanly too.
func TestHostCapacityMigration(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			rawURL := b.newURL(t)
			driver, dsn, gd, dialect := "sqlite", strings.TrimPrefix(rawURL, "sqlite:"), goose.DialectSQLite3, DialectSQLite
			if b.name == "postgres" {
				driver, dsn, gd, dialect = "pgx", rawURL, goose.DialectPostgres, DialectPostgres
			}
			db, err := sql.Open(driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			sub, err := fs.Sub(migrations, "migrations/"+dialect)
			if err != nil {
				t.Fatal(err)
			}
			p, err := goose.NewProvider(gd, db, sub, goose.WithSlog(slog.New(slog.DiscardHandler)), goose.WithDisableGlobalRegistry(true))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpTo(t.Context(), 3); err != nil {
				t.Fatal(err)
			}
			old := &Store{dialect: dialect, db: db, rdb: db, w: db, r: db}
			if _, err := old.exec(t.Context(), `INSERT INTO hosts (id, name, created_at, facts) VALUES (?, ?, ?, ?)`,
				"h1", "edge-1", ts(0), []byte(`{"memory_bytes":8589934592}`)); err != nil {
				t.Fatal(err)
			}

			s := openURL(t, rawURL)
			h, err := s.GetHost(t.Context(), "h1")
			mustOK(t, err)
			if h.Name != "edge-1" || string(h.Facts) != `{"memory_bytes":8589934592}` || h.MemoryBytes != 0 || h.CapacityBots != 0 || h.CapacityMemoryBytes != 0 {
				t.Fatalf("host after the migration: %+v", h)
			}
			mustOK(t, s.SetHostCapacity(t.Context(), "h1", 3, 0))
			if _, err := p.DownTo(t.Context(), 3); err != nil {
				t.Fatalf("down: %v", err)
			}
			var name string
			if err := db.QueryRowContext(t.Context(), rebind(dialect, `SELECT name FROM hosts WHERE id = ?`), "h1").Scan(&name); err != nil || name != "edge-1" {
				t.Fatalf("host after going down: %q %v", name, err)
			}
		})
	}
}
