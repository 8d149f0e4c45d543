package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/sso"
	"github.com/keygate/keygate/internal/ssotest"
	"github.com/keygate/keygate/internal/store"
)

// deviceRig is the admin API signing people in through a real OpenID
// provider's device authorization grant (zitadel/oidc's provider).
type deviceRig struct {
	h     *harness
	trail *eventLog
	op    *ssotest.Provider
	srv   *httptest.Server
}

func newDeviceRig(t *testing.T, wait time.Duration, ppl ...ssotest.User) *deviceRig {
	t.Helper()
	rig := &deviceRig{op: ssotest.Start(t, ppl...)}
	rig.h, rig.trail = signInHarness(t, 100)
	rig.h.opts.Now = time.Now
	rig.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rig.h.api.ServeHTTP(w, r) }))
	t.Cleanup(rig.srv.Close)
	p, err := sso.New(context.Background(), sso.Config{Issuer: rig.op.Issuer, ClientID: rig.op.ClientID, ClientSecret: rig.op.ClientSecret,
		RedirectURL: rig.srv.URL + "/api/v1/auth/oidc/callback"})
	if err != nil {
		t.Fatal(err)
	}
	si := rig.h.newSignIn(100)
	si.SSO, si.SSOPolicy, si.DeviceWait = p, admin.SSOPolicy{}, wait
	rig.h.opts.SignIn = si
	rig.h.api = admin.New(rig.h.opts)
	return rig
}

func (rig *deviceRig) post(t *testing.T, path string, body any, out any) int {
	t.Helper()
	var rd *strings.Reader
	if body == nil {
		rd = strings.NewReader("")
	} else {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	resp, err := http.Post(rig.srv.URL+"/api/v1"+path, "application/json", rd)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// TestOIDCDeviceSignIn: on a machine without a browser, keygate starts
// the provider's device grant and hands back only a user code, where to
// enter it and a handle; while the person has not answered, polling says
// pending; once they approve at the provider, the next poll verifies the
// ID token and answers a session for the linked user. The handle then is
// spent, and the device code was never in keygate's answers.
func TestOIDCDeviceSignIn(t *testing.T) {
	t.Parallel()
	rig := newDeviceRig(t, 6*time.Second, ssotest.User{Name: "dana", Password: "pw-" + t.Name()})
	rig.h.addPerson("dana", store.UserPerson, rbac.Viewer, nil, "")

	var d adminapi.DeviceSignIn
	if code := rig.post(t, "/auth/oidc/device", nil, &d); code != 200 || d.Handle == "" || d.UserCode == "" || !strings.HasPrefix(d.VerificationURI, rig.op.Issuer+"/device") {
		t.Fatalf("start: %d %+v", code, d)
	}
	var pending adminapi.DevicePending
	if code := rig.post(t, "/auth/oidc/device/token", adminapi.DeviceTokenRequest{Handle: d.Handle}, &pending); code != http.StatusAccepted || pending.Status != "authorization_pending" {
		t.Fatalf("poll before the person answered: %d %+v", code, pending)
	}
	if err := rig.op.Approve(d.UserCode, "dana", "pw-"+t.Name()); err != nil {
		t.Fatal(err)
	}
	var login adminapi.LoginResponse
	if code := rig.post(t, "/auth/oidc/device/token", adminapi.DeviceTokenRequest{Handle: d.Handle}, &login); code != 200 || !strings.HasPrefix(login.Token, "kg_session_") || login.Session.Name != "dana" {
		t.Fatalf("poll after approval: %d %+v", code, login.Session)
	}
	req, _ := http.NewRequest("GET", rig.srv.URL+"/api/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+login.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var who adminapi.WhoAmI
	_ = json.NewDecoder(resp.Body).Decode(&who)
	resp.Body.Close()
	if resp.StatusCode != 200 || who.Name != "dana" || who.Via != "session (oidc)" {
		t.Fatalf("whoami with the device session: %d %+v", resp.StatusCode, who)
	}
	var e adminapi.ErrorBody
	if code := rig.post(t, "/auth/oidc/device/token", adminapi.DeviceTokenRequest{Handle: d.Handle}, &e); code != http.StatusUnauthorized {
		t.Fatalf("the spent handle again: %d %+v", code, e)
	}
	if code := rig.post(t, "/auth/oidc/device/token", adminapi.DeviceTokenRequest{Handle: "made-up"}, &e); code != http.StatusUnauthorized {
		t.Fatalf("a made-up handle: %d %+v", code, e)
	}
	var got []string
	for _, ev := range rig.trail.find("admin.signin") {
		got = append(got, ev.Decision+":"+ev.Fields["user"]+":"+ev.Fields["reason"])
	}
	if strings.Join(got, " ") != "allow:dana: deny::device_unknown deny::device_unknown" {
		t.Fatalf("sign-ins on the trail: %v", got)
	}
}

// TestOIDCDeviceRefusals: a person who denies at the provider gets no
// session; someone the provider knows but keygate does not (and who may
// not be created) is refused, and no user is made.
func TestOIDCDeviceRefusals(t *testing.T) {
	t.Parallel()
	rig := newDeviceRig(t, 0, ssotest.User{Name: "dana", Password: "pw-dana"}, ssotest.User{Name: "eve", Password: "pw-eve"})
	rig.h.addPerson("dana", store.UserPerson, rbac.Viewer, nil, "")

	var d adminapi.DeviceSignIn
	rig.post(t, "/auth/oidc/device", nil, &d)
	if err := rig.op.Deny(d.UserCode, "dana", "pw-dana"); err != nil {
		t.Fatal(err)
	}
	var e adminapi.ErrorBody
	if code := rig.post(t, "/auth/oidc/device/token", adminapi.DeviceTokenRequest{Handle: d.Handle}, &e); code != http.StatusUnauthorized || !strings.Contains(e.Error.Message, "denied") {
		t.Fatalf("a denied sign-in: %d %+v", code, e)
	}

	rig.post(t, "/auth/oidc/device", nil, &d)
	if err := rig.op.Approve(d.UserCode, "eve", "pw-eve"); err != nil {
		t.Fatal(err)
	}
	if code := rig.post(t, "/auth/oidc/device/token", adminapi.DeviceTokenRequest{Handle: d.Handle}, &e); code != http.StatusForbidden || !strings.Contains(e.Error.Message, "no keygate user eve") {
		t.Fatalf("a person keygate does not know: %d %+v", code, e)
	}
	if _, err := rig.h.st.GetUserByName(context.Background(), "eve"); err == nil {
		t.Fatal("a refused device sign-in created its user")
	}
}
