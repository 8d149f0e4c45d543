// Package storetest is the conformance suite for keygate's store and the
// helpers other packages use to get a real database in their tests.
//
// It registers the SQLite and PostgreSQL drivers, so a test that imports it
// can call store.Open directly:
//
//	st := storetest.Open(t, storetest.SQLiteURL(t))
//
// PostgreSQL tests run only when KEYGATE_TEST_POSTGRES_URL is set; each call
// to PostgresURL gets its own schema, so test packages can share one database
// and run in parallel.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver

	"github.com/keygate/keygate/internal/store"
)

// PostgresEnv names the environment variable holding the URL of the
// PostgreSQL database that tests may use.
const PostgresEnv = "KEYGATE_TEST_POSTGRES_URL"

// Run runs the store conformance suite. newURL must return the URL of a new,
// empty database each time it is called, as SQLiteURL and PostgresURL do; the
// suite opens it with store.Open, sometimes more than once, to check that data
// survives a restart and that concurrent processes can share a database.
func Run(t *testing.T, newURL func(t testing.TB) string) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, newURL func(t testing.TB) string)
	}{
		{"Open", testOpen},
		{"Reopen", testReopen},
		{"ConcurrentOpen", testConcurrentOpen},
		{"Providers", testProviders},
		{"ProviderConflicts", testProviderConflicts},
		{"ProviderDelete", testProviderDelete},
		{"SecretVersions", testSecretVersions},
		{"SecretConflict", testSecretConflict},
		{"SecretDelete", testSecretDelete},
		{"KeyRoundTrip", testKeyRoundTrip},
		{"KeyEmptyOptionalFields", testKeyEmptyOptionalFields},
		{"KeyConflicts", testKeyConflicts},
		{"KeyNotFound", testKeyNotFound},
		{"ListKeysOrder", testListKeysOrder},
		{"RevokeKey", testRevokeKey},
		{"TouchKey", testTouchKey},
		{"AdminTokens", testAdminTokens},
		{"AdminTokenRevoke", testAdminTokenRevoke},
		{"TxCommit", testTxCommit},
		{"TxRollbackOnError", testTxRollbackOnError},
		{"TxRollbackOnPanic", testTxRollbackOnPanic},
		{"TxNested", testTxNested},
		{"TxConflict", testTxConflict},
		{"ConcurrentCreateKeys", testConcurrentCreateKeys},
		{"ConcurrentPutSameSecretVersion", testConcurrentPutSameSecretVersion},
		{"ConcurrentStoresOneDatabase", testConcurrentStoresOneDatabase},
		{"ConcurrentReadsDuringWrites", testConcurrentReadsDuringWrites},
		{"AdminTokenRole", testAdminTokenRole},
		{"SecretMetaLifecycle", testSecretMetaLifecycle},
		{"DeleteSecretRecords", testDeleteSecretRecords},
		{"DestroySupersededVersions", testDestroySupersededVersions},
		{"Rewrap", testRewrap},
		{"KEKRecords", testKEKRecords},
		{"ListAndDeleteVersions", testListAndDeleteVersions},
		{"KEKRotations", testKEKRotations},
		{"Snapshot", testSnapshot},
		{"KeyLimitsAndGroups", testKeyLimitsAndGroups},
		{"Usage", testUsage},
		{"UsageFromManyNodes", testUsageFromManyNodes},
		{"UsageBy", testUsageBy},
		{"KeyScopesSuspendExpiry", testKeyScopesSuspendExpiry},
		{"Revocations", testRevocations},
		{"SigningKeysAndFamilies", testSigningKeysAndFamilies},
		{"KeyClientCert", testKeyClientCert},
		{"KeyHistory", testKeyHistory},
		{"Audit", testAudit},
		{"OTPSteps", testOTPSteps},
		{"OTPStepRace", testOTPStepRace},
		{"OTPCounters", testOTPCounters},
		{"OTPCounterRace", testOTPCounterRace},
		{"Users", testUsers},
		{"Teams", testTeams},
		{"TeamMembers", testTeamMembers},
		{"AdminTokenOwners", testAdminTokenOwners},
		{"Approvals", testApprovals},
		{"Invitations", testInvitations},
		{"MCPServers", testMCPServers},
		{"SnapshotPeople", testSnapshotPeople},
		{"WorkloadTokens", testWorkloadTokens},
		{"MintLeases", testMintLeases},
		{"RoutingEntries", testRoutingEntries},
		{"Sessions", testSessions},
		{"SignInSecrets", testSignInSecrets},
		{"SignInFlows", testSignInFlows},
		{"Changes", testChanges},
		{"ResponseOwners", testResponseOwners},
		{"OAuthServer", testOAuthServer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newURL) })
	}
}

// Open opens the database at url with store.Open and closes it when the test
// ends. It fails the test if the database cannot be opened.
func Open(t testing.TB, url string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, url)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

// SQLiteURL returns the URL of a new SQLite database file in a temporary
// directory that is removed when the test ends.
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "keygate.db")
}

// PostgresURL returns the URL of a new, empty schema in the PostgreSQL
// database named by KEYGATE_TEST_POSTGRES_URL, and drops the schema when the
// test ends. It skips the test when the variable is not set.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skip("set " + PostgresEnv + "=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run the PostgreSQL tests")
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("%s must be a postgres:// URL", PostgresEnv)
	}
	var b [8]byte
	rand.Read(b[:])
	schema := "kg_test_" + hex.EncodeToString(b[:])

	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create test schema in %s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() {
		if err := exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE"); err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Shared helpers for the suite.

// ctx returns a context that ends with the test, bounded so a hung database
// fails the test instead of stalling the run.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// at returns a time with nanoseconds and a non-UTC zone, so that round trips
// exercise truncation to microseconds and conversion to UTC.
func at(offset time.Duration) time.Time {
	zone := time.FixedZone("UTC+5:30", 5*3600+30*60)
	return time.Date(2025, 3, 14, 15, 9, 26, 535897932, zone).Add(offset)
}

// stored is t as the store returns it: UTC, truncated to microseconds.
func stored(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func ptr[T any](v T) *T { return &v }

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t testing.TB, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func checkTime(t testing.TB, field string, got, want time.Time) {
	t.Helper()
	if !got.Equal(stored(want)) {
		t.Errorf("%s = %v, want %v", field, got, stored(want))
	}
	if got.Location() != time.UTC {
		t.Errorf("%s is in %v, want UTC", field, got.Location())
	}
}

func checkTimePtr(t testing.TB, field string, got, want *time.Time) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("%s = %v, want %v", field, got, want)
	default:
		checkTime(t, field, *got, *want)
	}
}

func checkBytes(t testing.TB, field string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s = %x, want %x", field, got, want)
	}
}

// checkList compares string lists; empty lists must read back as nil.
func checkList(t testing.TB, field string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", field, got, want)
	}
	if len(want) == 0 && got != nil {
		t.Errorf("%s = %#v, want nil for an empty list", field, got)
	}
}

// isPostgresURL reports whether url names a PostgreSQL database.
func isPostgresURL(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}
