package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminclient"
	"github.com/keygate/keygate/internal/secret"
)

// openAPIDoc fetches and loads the admin API's description from h.
func openAPIDoc(t *testing.T, h *harness) (*openapi3.T, []byte) {
	t.Helper()
	w := h.do("GET", "/api/v1/openapi.json", "")
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/v1/openapi.json: %d %s", w.Code, w.Body)
	}
	doc, err := openapi3.NewLoader().LoadFromData(w.Body.Bytes())
	if err != nil {
		t.Fatalf("the document does not load: %v", err)
	}
	return doc, w.Body.Bytes()
}

func withMetrics(o *admin.Options) { o.Metrics = http.NotFoundHandler() }

// openAPIPath is a route's path as the document writes it.
func openAPIPath(rt admin.RouteInfo) string {
	p := strings.ReplaceAll(rt.Path, "{path...}", "{path}")
	if rt.Action != "" {
		p += ":" + rt.Action
	}
	return p
}

// TestOpenAPIDescribesEveryRoute: the description is a valid OpenAPI
// 3.1 document; every route of the table is an operation of it, and
// every operation is a route; it needs a signed-in caller like every
// admin route.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	h := newHarness(t, withMetrics)
	doc, _ := openAPIDoc(t, h)
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the document is not valid OpenAPI 3.1: %v", err)
	}
	routes := admin.Routes(h.api)
	want := map[string]bool{}
	for _, rt := range routes {
		id := rt.Method + " " + openAPIPath(rt)
		want[id] = true
		item := doc.Paths.Value(openAPIPath(rt))
		if item == nil || item.GetOperation(rt.Method) == nil {
			t.Errorf("route %s is not described", rt.ID)
			continue
		}
		op := item.GetOperation(rt.Method)
		if op.Summary == "" || op.Summary == rt.ID {
			t.Errorf("route %s has no summary: add it to operationDocs in openapi.go", rt.ID)
		}
		if rt.Permission != "" && op.Extensions["x-keygate-permission"] != rt.Permission {
			t.Errorf("route %s: documented permission %v, the table says %s", rt.ID, op.Extensions["x-keygate-permission"], rt.Permission)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !want[method+" "+path] {
				t.Errorf("the document describes %s %s, which is no route", method, path)
			}
		}
	}
	if len(routes) < 60 {
		t.Fatalf("only %d routes: the table did not load", len(routes))
	}
	w := h.call("GET", "/api/v1/openapi.json", "", "")
	wantError(t, w, http.StatusUnauthorized, "unauthorized")
}

// TestOpenAPISchemasMatchAnswers: real answers, an error among them,
// validate against the schemas the document gives their operations.
func TestOpenAPISchemasMatchAnswers(t *testing.T) {
	h := newHarness(t)
	doc, _ := openAPIDoc(t, h)
	h.do("POST", "/api/v1/keys", `{"name":"documented"}`)
	for _, c := range []struct {
		method, path, body string
		opPath             string
		status             int
	}{
		{"GET", "/api/v1/whoami", "", "/api/v1/whoami", 200},
		{"GET", "/api/v1/status", "", "/api/v1/status", 200},
		{"GET", "/api/v1/keys", "", "/api/v1/keys", 200},
		{"POST", "/api/v1/keys", `{"name":"second"}`, "/api/v1/keys", 201},
		{"GET", "/api/v1/roles", "", "/api/v1/roles", 200},
		{"GET", "/api/v1/keys/no-such-key", "", "/api/v1/keys/{ref}", 404},
		{"POST", "/api/v1/keys", `{"name":`, "/api/v1/keys", 400},
		{"GET", "/api/v1/nothing-here", "", "/api/v1/whoami", 404},
	} {
		w := h.do(c.method, c.path, c.body)
		if w.Code != c.status {
			t.Fatalf("%s %s: %d %s", c.method, c.path, w.Code, w.Body)
		}
		op := doc.Paths.Value(c.opPath).GetOperation(c.method)
		resp := op.Responses.Status(c.status)
		if resp == nil {
			resp = op.Responses.Default()
		}
		schema := resp.Value.Content.Get("application/json").Schema.Value
		var v any
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Fatalf("%s %s: not JSON: %v", c.method, c.path, err)
		}
		if err := schema.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("%s %s answered %d with a body its schema refuses: %v\n%s", c.method, c.path, c.status, err, w.Body)
		}
	}
}

// TestAdminClientAgreesWithOpenAPI: every request the CLI's client
// makes, each of its methods called once, is a described operation.
func TestAdminClientAgreesWithOpenAPI(t *testing.T) {
	h := newHarness(t, withMetrics)
	doc, _ := openAPIDoc(t, h)
	type op struct {
		method string
		re     *regexp.Regexp
	}
	var ops []op
	param := regexp.MustCompile(`\\\{[a-z]+\\\}`)
	for path, item := range doc.Paths.Map() {
		// A secret's {path} holds '/' but never ':', which starts an action.
		pat := strings.ReplaceAll(regexp.QuoteMeta(path), `\{path\}`, `[^:]+`)
		re := regexp.MustCompile("^" + param.ReplaceAllString(pat, `[^/]+`) + "$")
		for method := range item.Operations() {
			ops = append(ops, op{method, re})
		}
	}
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.EscapedPath())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}")
	}))
	defer srv.Close()
	c, err := adminclient.New(srv.URL, secret.New("test-admin-token-not-real"))
	if err != nil {
		t.Fatal(err)
	}
	cv := reflect.ValueOf(c)
	ct := cv.Type()
	called := 0
	for i := 0; i < ct.NumMethod(); i++ {
		m := ct.Method(i)
		if m.Type.NumIn() < 2 || m.Type.In(1) != reflect.TypeFor[context.Context]() {
			continue // BaseURL, Format: no request
		}
		n := 0
		// Plain names first; then durations, for the methods that check
		// an argument is one (ListKeysUnused, RotateKey's grace).
		for _, str := range []string{"x1", "30d"} {
			args := []reflect.Value{cv}
			for j := 1; j < m.Type.NumIn(); j++ {
				args = append(args, argFor(m.Type.In(j), str))
			}
			mu.Lock()
			before := len(seen)
			mu.Unlock()
			m.Func.Call(args)
			mu.Lock()
			n = len(seen) - before
			mu.Unlock()
			if n > 0 {
				break
			}
		}
		if n == 0 {
			// These check their arguments (a routing kind, a provider: or
			// secret: target) before sending; TestRouting* and the
			// sources tests cover their paths. Known gap: not checked here.
			if !slices.Contains([]string{"DeleteRouting", "GetRouting", "PutRouting", "RefreshSource"}, m.Name) {
				t.Errorf("adminclient.%s sent no request", m.Name)
			}
			continue
		}
		called++
	}
	if called < 60 {
		t.Fatalf("only %d client methods sent requests", called)
	}
	for _, s := range seen {
		method, path, _ := strings.Cut(s, " ")
		ok := false
		for _, o := range ops {
			if o.method == method && o.re.MatchString(path) {
				ok = true
				break
			}
		}
		if !ok {
			t.Errorf("the client sends %s %s, which the document does not describe", method, path)
		}
	}
}

// argFor is an argument of type t that passes the client's own checks;
// strings are str.
func argFor(t reflect.Type, str string) reflect.Value {
	switch {
	case t == reflect.TypeFor[context.Context]():
		return reflect.ValueOf(context.Background())
	case t == reflect.TypeFor[secret.String]():
		return reflect.ValueOf(secret.New("test-secret-value"))
	case t == reflect.TypeFor[io.Writer]():
		return reflect.ValueOf(io.Discard).Convert(t)
	}
	v := reflect.New(t).Elem()
	if t.Kind() == reflect.Struct {
		// Requests name what they create: fill every string field.
		for i := 0; i < t.NumField(); i++ {
			if f := v.Field(i); f.CanSet() && f.Kind() == reflect.String {
				f.SetString(str)
			}
		}
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString(str)
	case reflect.Int, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint64:
		v.SetUint(1)
	case reflect.Bool:
		v.SetBool(true)
	}
	return v
}
