package admin_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/store"
)

// BenchmarkAdminAuth measures what deciding an admin request costs: a
// credential of no user (one lookup, as before users existed) beside a
// user's credential in a team (its user and teams read on every request,
// so a disabled user stops at once everywhere), over SQLite.
func BenchmarkAdminAuth(b *testing.B) {
	for _, c := range []struct{ name, kind string }{{"token-of-no-user", ""}, {"user-in-a-team", "user"}} {
		b.Run(c.name, func(b *testing.B) {
			h := newHarness(b)
			token := h.token
			if c.kind != "" {
				h.addTeam("payments", "")
				token = h.addPerson("dana", store.UserPerson, rbac.Developer, map[string]string{"payments": rbac.Developer}, "").token
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				r := httptest.NewRequest("GET", "/api/v1/whoami", nil)
				r.Header.Set("Authorization", "Bearer "+token)
				w := httptest.NewRecorder()
				h.api.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
