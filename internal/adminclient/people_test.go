package adminclient_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store/storetest"
	"github.com/keygate/keygate/internal/vault"
)

// realAdmin serves the real admin API over a real SQLite store and
// returns its URL and the bootstrap credential.
func realAdmin(t *testing.T, approvals ...rbac.Permission) (string, string) {
	t.Helper()
	st := storetest.Open(t, storetest.SQLiteURL(t))
	mk := make([]byte, vault.MasterKeySize)
	pepper := make([]byte, apikey.MinPepperSize)
	rand.Read(mk)
	rand.Read(pepper)
	kek, err := vault.NewLocalKEK(mk)
	if err != nil {
		t.Fatal(err)
	}
	v := vault.New(kek, st)
	h, err := apikey.NewHasher(pepper)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := admin.EnsureBootstrapToken(context.Background(), st, h, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	api := admin.New(admin.Options{Store: st, People: st, Credentials: st, Approvals: st, Vault: v, Hasher: h,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Approval: admin.ApprovalPolicy{RequiredFor: approvals},
		Backup: func(ctx context.Context, w io.Writer) error {
			_, err := w.Write([]byte("backup-bytes"))
			return err
		},
	})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return srv.URL, tok.Reveal()
}

func client(t *testing.T, url, token string, opts ...adminclient.Option) *adminclient.Client {
	t.Helper()
	c, err := adminclient.New(url, secret.New(token), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPeopleThroughTheClient: users, teams, members, credentials and
// roles, through the typed client against the real admin API.
func TestPeopleThroughTheClient(t *testing.T) {
	url, boot := realAdmin(t)
	ctx := context.Background()
	owner := client(t, url, boot)
	if _, err := owner.CreateTeam(ctx, adminapi.CreateTeamRequest{Name: "payments"}); err != nil {
		t.Fatal(err)
	}
	u, err := owner.CreateUser(ctx, adminapi.CreateUserRequest{Name: "dana", Role: "developer", Team: "payments"})
	if err != nil || u.Secret == "" {
		t.Fatalf("create user: %+v %v", u, err)
	}
	dana := client(t, url, u.Secret)
	who, err := dana.WhoAmI(ctx)
	if err != nil || who.Name != "dana" || len(who.Teams) != 1 || who.Teams[0].Team != "payments" {
		t.Fatalf("whoami %+v %v", who, err)
	}
	if _, err := dana.ListUsers(ctx); !isStatus(err, 403) {
		t.Fatalf("a developer listing users: %v, want 403", err)
	}
	pat, err := dana.CreatePersonalToken(ctx, adminapi.CreateTokenRequest{Name: "ci", TTL: "7d"})
	if err != nil {
		t.Fatal(err)
	}
	toks, err := dana.ListAdminTokens(ctx)
	if err != nil || len(toks) != 2 {
		t.Fatalf("dana's credentials %+v %v", toks, err)
	}
	if _, err := dana.RevokeAdminToken(ctx, pat.Token.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := client(t, url, pat.Secret).WhoAmI(ctx); !isStatus(err, 401) {
		t.Fatalf("a revoked credential: %v", err)
	}
	if _, err := owner.PutTeamMember(ctx, "payments", "dana", "team-admin"); err != nil {
		t.Fatal(err)
	}
	ms, err := dana.ListTeamMembers(ctx, "payments")
	if err != nil || len(ms) != 1 || ms[0].Role != "team-admin" {
		t.Fatalf("members %+v %v", ms, err)
	}
	if _, err := owner.SetUserRole(ctx, "dana", "nope"); !isStatus(err, 400) {
		t.Fatalf("an unknown role: %v", err)
	}
	roles, err := owner.ListRoles(ctx)
	if err != nil || len(roles.Roles) != 8 || roles.Roles[0].Name != "owner" {
		t.Fatalf("roles %+v %v", roles, err)
	}
	if _, err := owner.DisableUser(ctx, "dana"); err != nil {
		t.Fatal(err)
	}
	if _, err := dana.WhoAmI(ctx); !isStatus(err, 401) {
		t.Fatalf("a disabled user's credential: %v", err)
	}
}

// TestApprovalThroughTheClient: a request that waits answers an
// *ApprovalPendingError, for JSON and streamed answers alike, and runs
// once sent again WithApproval.
func TestApprovalThroughTheClient(t *testing.T) {
	url, boot := realAdmin(t, rbac.BackupExport)
	ctx := context.Background()
	owner := client(t, url, boot)
	var users [2]*adminclient.Client
	var secrets [2]string
	for i, name := range []string{"alice", "bob"} {
		u, err := owner.CreateUser(ctx, adminapi.CreateUserRequest{Name: name, Role: "owner"})
		if err != nil {
			t.Fatal(err)
		}
		users[i], secrets[i] = client(t, url, u.Secret), u.Secret
	}
	var buf bytes.Buffer
	err := users[0].Backup(ctx, &buf)
	var pending *adminclient.ApprovalPendingError
	if !errors.As(err, &pending) || buf.Len() != 0 {
		t.Fatalf("a backup waiting for approval: %v (%d bytes)", err, buf.Len())
	}
	id := pending.Pending.Approval.ID
	if _, err := users[0].DecideApproval(ctx, id, true); !isStatus(err, 403) {
		t.Fatalf("approving one's own request: %v", err)
	}
	list, err := users[1].ListApprovals(ctx)
	if err != nil || len(list) != 1 || list[0].Status != "pending" {
		t.Fatalf("approvals %+v %v", list, err)
	}
	if _, err := users[1].DecideApproval(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	approved := client(t, url, secrets[0], adminclient.WithApproval(id))
	if err := approved.Backup(ctx, &buf); err != nil || buf.String() != "backup-bytes" {
		t.Fatalf("the approved backup: %q %v", buf.String(), err)
	}
	buf.Reset()
	if err := approved.Backup(ctx, &buf); !isStatus(err, 409) {
		t.Fatalf("a second use of the approval: %v", err)
	}
}

func isStatus(err error, status int) bool {
	var e *adminclient.APIError
	return errors.As(err, &e) && e.Status == status
}
