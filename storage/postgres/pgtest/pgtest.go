// Package pgtest finds the PostgreSQL server the tests may use and gives
// each test a schema of its own.
//
// The server is RELAIS_TEST_POSTGRES (a postgres:// URL; "off" skips the
// PostgreSQL tests), or else the one on 127.0.0.1:5432, database test, when
// it answers. Without one, the tests skip.
package pgtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the server CI and the development machines run.
const DefaultURL = "postgres://127.0.0.1:5432/test?sslmode=disable"

var (
	once   sync.Once
	url    string
	reason string
)

// URL returns the server's URL, or skips the test when there is none.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(find)
	if url == "" {
		t.Skip("no PostgreSQL server: " + reason)
	}
	return url
}

func find() {
	u := os.Getenv("RELAIS_TEST_POSTGRES")
	switch u {
	case "off":
		reason = "RELAIS_TEST_POSTGRES=off"
		return
	case "":
		c, err := net.DialTimeout("tcp", "127.0.0.1:5432", time.Second)
		if err != nil {
			reason = "nothing listens on 127.0.0.1:5432 and RELAIS_TEST_POSTGRES is unset"
			return
		}
		c.Close()
		u = DefaultURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		reason = "cannot connect to " + u + ": " + err.Error()
		return
	}
	defer conn.Close(ctx)
	url = u
}

// Schema returns a schema name for key (the same key gives the same name,
// so a store can be reopened) and drops that schema when the test ends.
func Schema(t testing.TB, key string) string {
	t.Helper()
	u := URL(t)
	sum := sha256.Sum256([]byte(t.Name() + "\x00" + key))
	name := "t_" + hex.EncodeToString(sum[:10])
	t.Cleanup(func() { Drop(t, u, name) })
	return name
}

// Drop removes a schema and everything in it.
func Drop(t testing.TB, u, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Errorf("pgtest: drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		t.Errorf("pgtest: drop schema %s: %v", schema, err)
	}
}
