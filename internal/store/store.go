// Package store is pmd's persistent state: hosts, enrollment tokens,
// certificates, CA key material and the audit log, kept in SQLite or
// PostgreSQL through database/sql.
//
// Every method takes a context, returns errors wrapped with the operation,
// and maps "no such row" to [ErrNotFound], unique violations to
// [ErrConflict] and a database out of reach to [ErrUnavailable]. Times go in and come out as UTC with microsecond precision.
// A [Store] is safe for concurrent use; [Store.InTx] hands out a Store bound
// to one transaction.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrNotFound means the row asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a unique key (id, name, serial…) is already taken.
	ErrConflict = errors.New("conflict")
	// ErrTokenUsed means an enrollment token was already redeemed.
	ErrTokenUsed = errors.New("token already used")
	// ErrTokenExpired means an enrollment token is past its expiry.
	ErrTokenExpired = errors.New("token expired")
	// ErrUnavailable means the database could not be reached or is too busy: the call may
	// succeed later. It is a *wire.Error, so an API answers it 503 "unavailable" as it is.
	ErrUnavailable error = &wire.Error{Code: wire.CodeUnavailable, Message: "the database is unavailable; try again shortly"}
)

// Dialect names returned by [Store.Dialect].
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// querier is what Store methods run SQL on: a *sql.DB or a *sql.Tx.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var (
	_ querier = (*sql.DB)(nil)
	_ querier = (*sql.Tx)(nil)
)

// Store is the database handle. It is safe for concurrent use. A Store
// passed to the function given to [Store.InTx] is bound to that transaction
// and must not be used after the function returns.
type Store struct {
	dialect string
	db      *sql.DB // writes (and everything on Postgres)
	rdb     *sql.DB // reads; a separate read-only pool on SQLite, db on Postgres
	w       querier // db, or the transaction
	r       querier // rdb, or the transaction
	tx      *sql.Tx // non-nil when bound to a transaction
}

// Open connects to the database at rawURL and brings its schema up to date.
//
// rawURL is "sqlite:/path/to/pm.db", "sqlite:///abs/path/pm.db" (a relative
// "sqlite:pm.db" is resolved against the working directory) or a
// "postgres://" / "postgresql://" URL as understood by pgx. The directory of
// a SQLite file must already exist; the file itself is created if missing.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	switch {
	case strings.HasPrefix(rawURL, "sqlite:"):
		return openSQLite(ctx, strings.TrimPrefix(rawURL, "sqlite:"))
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return openPostgres(ctx, rawURL)
	default:
		return nil, fmt.Errorf("open store: unsupported database url %q: want sqlite:/path/to/file.db or postgres://…", redact(rawURL))
	}
}

// redact hides a password in a URL so it can go into an error message.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if i := strings.Index(raw, "@"); i >= 0 {
			return "…" + raw[i:]
		}
		return raw
	}
	return u.Redacted()
}

func openSQLite(ctx context.Context, path string) (*Store, error) {
	if strings.HasPrefix(path, "//") {
		// sqlite:///abs/path: an empty authority followed by an absolute path.
		path = path[2:]
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("open store: sqlite url must not name a host: use sqlite:///abs/path or sqlite:/abs/path")
		}
	}
	if path == "" {
		return nil, errors.New("open store: sqlite url has no file path")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open store: sqlite path %q must not contain '?' or '#'", path)
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("open store: directory of sqlite database: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("open store: %s is not a directory", dir)
	}
	// The database holds sealed secrets and the audit log: create it private. SQLite gives
	// its -wal and -shm files the database file's mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	}

	// Writers share one connection, so they queue in database/sql (honouring
	// ctx) instead of fighting over SQLite's lock; _txlock=immediate takes the
	// write lock at BEGIN so a transaction never has to upgrade a read lock.
	// Readers get their own read-only pool, which WAL lets run alongside the
	// writer.
	wdsn := path + "?_txlock=immediate" +
		"&_pragma=busy_timeout(5000)" +
		"&_pragma=foreign_keys(1)" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", wdsn)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: sqlite %s: %w", path, err)
	}
	if err := migrate(ctx, db, DialectSQLite); err != nil {
		db.Close()
		return nil, err
	}

	rdsn := path + "?_pragma=busy_timeout(5000)" +
		"&_pragma=foreign_keys(1)" +
		"&_pragma=query_only(1)"
	rdb, err := sql.Open("sqlite", rdsn)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	rdb.SetMaxOpenConns(n)
	rdb.SetMaxIdleConns(n)
	rdb.SetConnMaxIdleTime(5 * time.Minute)
	s := &Store{dialect: DialectSQLite, db: db, rdb: rdb}
	s.w, s.r = db, rdb
	return s, nil
}

func openPostgres(ctx context.Context, rawURL string) (*Store, error) {
	db, err := sql.Open("pgx", rawURL)
	if err != nil {
		return nil, fmt.Errorf("open store: postgres %s: %w", redact(rawURL), err)
	}
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(5)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(time.Hour)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: postgres %s: %w", redact(rawURL), oneLine{err})
	}
	if err := migrate(ctx, db, DialectPostgres); err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{dialect: DialectPostgres, db: db, rdb: db}
	s.w, s.r = db, db
	return s, nil
}

// migrate applies the embedded migrations for dialect; already applied ones
// are skipped, so it is safe on every start.
func migrate(ctx context.Context, db *sql.DB, dialect string) error {
	sub, err := fs.Sub(migrations, "migrations/"+dialect)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	opts := []goose.ProviderOption{
		goose.WithSlog(slog.New(slog.DiscardHandler)),
		goose.WithDisableGlobalRegistry(true),
	}
	gd := goose.DialectSQLite3
	if dialect == DialectPostgres {
		gd = goose.DialectPostgres
		// Two pmd processes starting at once must not both migrate.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gd, db, sub, opts...)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Close closes the database. Closing a Store bound to a transaction is an
// error.
func (s *Store) Close() error {
	if s.tx != nil {
		return errors.New("close store: store is bound to a transaction")
	}
	err := s.db.Close()
	if s.rdb != s.db {
		err = errors.Join(err, s.rdb.Close())
	}
	if err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Dialect reports the backend: [DialectSQLite] or [DialectPostgres].
func (s *Store) Dialect() string { return s.dialect }

// Ping checks that the database is reachable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	return nil
}

// InTx runs fn in a transaction: every method of the Store passed to fn runs
// inside it. The transaction commits if fn returns nil and rolls back if it
// returns an error or panics. On a Store that is already bound to a
// transaction, InTx just calls fn with it.
//
// On SQLite the transaction holds the only write connection until it ends,
// so fn must use the Store it is given, not the outer one, for writes.
func (s *Store) InTx(ctx context.Context, fn func(tx *Store) error) error {
	if s.tx != nil {
		return fn(s)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", dbErr(err))
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	ts := &Store{dialect: s.dialect, db: s.db, rdb: s.rdb, w: tx, r: tx, tx: tx}
	if err := fn(ts); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", dbErr(err))
	}
	committed = true
	return nil
}

// rebind turns the ? placeholders every query is written with into the
// dialect's own; on Postgres that is $1, $2, …. Question marks inside
// single-quoted literals, double-quoted identifiers and comments are left
// alone.
func rebind(dialect, query string) string {
	if dialect != DialectPostgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(query[i+1:], c)
			if j < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+j+2])
			i += j + 1
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+j+1])
			i += j
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// sqliteTimeLayout is how times are stored in SQLite TEXT columns: fixed
// width and UTC, so that text order is time order.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

// arg converts a Go value into what the dialect stores: times become UTC
// with microsecond precision (Postgres' resolution), and on SQLite text.
func (s *Store) arg(v any) any {
	switch v := v.(type) {
	case time.Time:
		t := v.UTC().Truncate(time.Microsecond)
		if s.dialect == DialectSQLite {
			return t.Format(sqliteTimeLayout)
		}
		return t
	case *time.Time:
		if v == nil {
			return nil
		}
		return s.arg(*v)
	default:
		return v
	}
}

func (s *Store) args(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = s.arg(a)
	}
	return out
}

func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return s.w.ExecContext(ctx, rebind(s.dialect, query), s.args(args)...)
}

// execCount runs a statement and returns how many rows it touched.
func (s *Store) execCount(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// writeRow runs a statement that returns one row (INSERT … RETURNING) on the
// writer.
func (s *Store) writeRow(ctx context.Context, query string, args ...any) *sql.Row {
	return s.w.QueryRowContext(ctx, rebind(s.dialect, query), s.args(args)...)
}

func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return s.r.QueryRowContext(ctx, rebind(s.dialect, query), s.args(args)...)
}

func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return s.r.QueryContext(ctx, rebind(s.dialect, query), s.args(args)...)
}

// timeCol scans a NOT NULL time column.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(v any) error {
	if v == nil {
		return errors.New("scan time: unexpected NULL")
	}
	t, err := parseTime(v)
	if err != nil {
		return err
	}
	*c.t = t
	return nil
}

// nullTimeCol scans a nullable time column into a *time.Time.
type nullTimeCol struct{ t **time.Time }

func (c nullTimeCol) Scan(v any) error {
	if v == nil {
		*c.t = nil
		return nil
	}
	t, err := parseTime(v)
	if err != nil {
		return err
	}
	*c.t = &t
	return nil
}

func parseTime(v any) (time.Time, error) {
	switch v := v.(type) {
	case time.Time:
		return v.UTC(), nil
	case string:
		return parseTimeText(v)
	case []byte:
		return parseTimeText(string(v))
	default:
		return time.Time{}, fmt.Errorf("scan time: unsupported type %T", v)
	}
}

func parseTimeText(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("scan time: %w", err)
	}
	return t.UTC(), nil
}

// nullString stores "" as NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullBytes stores an empty slice as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// isUnique reports whether err is a unique or primary key violation.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// isForeignKey reports whether err is a foreign key violation.
func isForeignKey(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23503"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	return false
}

// dbErr maps driver errors onto the package's sentinels, keeping the driver
// error in the chain for detail.
func dbErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case isUnique(err):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case isUnavailable(err):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	default:
		return err
	}
}

// oneLine is an error whose message fits on one line: pgx lists each address it tried to
// connect to on a line of its own, and a CLI error is one line.
type oneLine struct{ err error }

func (e oneLine) Error() string {
	msg := strings.ReplaceAll(strings.TrimSpace(e.err.Error()), ":\n", ": ")
	return strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", "; ")), " ")
}

func (e oneLine) Unwrap() error { return e.err }

// isUnavailable reports whether err says the database cannot be reached now — a refused or
// lost connection, a timeout, a PostgreSQL that is shutting down or starting, a SQLite file
// locked past the busy timeout — rather than that the query was wrong.
func isUnavailable(err error) bool {
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.Timeout(err) {
		return true
	}
	var ce *pgconn.ConnectError
	var oe *net.OpError
	if errors.As(err, &ce) || errors.As(err, &oe) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01-57P03: admin shutdown, crash shutdown,
		// cannot connect now; 53300: too many connections.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" || pe.Code == "53300"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()&0xff == sqlite3.SQLITE_BUSY || se.Code()&0xff == sqlite3.SQLITE_LOCKED
	}
	return strings.Contains(err.Error(), "conn closed") // pgx's error for a connection that died mid-call
}

// mustAffect turns "no row matched" into ErrNotFound.
func mustAffect(n int64, err error) error {
	if err != nil {
		return dbErr(err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
