// Package storetest gives tests a fresh PostgreSQL database on the server named by
// PM_TEST_POSTGRES_URL.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// PostgresURL creates a database named pm_test_<random> on the server in PM_TEST_POSTGRES_URL
// and drops it when the test ends. Without that variable the test is skipped — or fails when
// CI=true, since CI must run the PostgreSQL tests.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("PM_TEST_POSTGRES_URL")
	if admin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("PM_TEST_POSTGRES_URL is not set; CI must run the PostgreSQL tests")
		}
		t.Skip("PM_TEST_POSTGRES_URL is not set")
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parse PM_TEST_POSTGRES_URL: %v", err)
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	name := strings.ToLower("pm_test_" + rand.Text()[:12])
	if _, err := db.ExecContext(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		// t.Context is already cancelled during cleanup.
		if _, err := db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
