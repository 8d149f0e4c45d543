package console

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
)

// chartData is what console.js draws: x as Unix seconds, one series per
// line, money in dollars.
type chartData struct {
	Title  string        `json:"title"`
	X      []int64       `json:"x"`
	Series []chartSeries `json:"series"`
}

type chartSeries struct {
	Label  string    `json:"label"`
	Values []float64 `json:"values"`
	Money  bool      `json:"money,omitempty"`
}

func pointsChart(title string, pts []adminapi.OverviewPoint, money bool) chartData {
	c := chartData{Title: title}
	req, ref, usd := chartSeries{Label: "Requests"}, chartSeries{Label: "Refusals"}, chartSeries{Label: "Spend (USD)", Money: true}
	for _, p := range pts {
		c.X = append(c.X, p.At.Unix())
		req.Values = append(req.Values, float64(p.Requests))
		ref.Values = append(ref.Values, float64(p.Refusals))
		usd.Values = append(usd.Values, float64(p.MicroUSD)/1e6)
	}
	if money {
		c.Series = []chartSeries{usd}
	} else {
		c.Series = []chartSeries{req, ref}
	}
	return c
}

type overviewData struct {
	O      adminapi.Overview
	Charts []chartData
}

func (c *Console) overview(r *http.Request, v *view) error {
	if !v.Me.Can("usage.read") {
		// A user who may not read usage starts on the first page they may.
		if len(v.Nav) > 0 {
			v.Data = overviewData{}
			return nil
		}
	}
	var d overviewData
	if err := c.api.get(r, "/overview", &d.O); err != nil {
		return err
	}
	d.Charts = []chartData{
		pointsChart("Last hour, every 5 minutes", d.O.Minutes, false),
		pointsChart("Last 24 hours, by hour", d.O.Hours, false),
		pointsChart("Last 30 days, by day", d.O.Days, false),
		pointsChart("Spend, last 30 days", d.O.Days, true),
	}
	v.Data = d
	return nil
}

type keysData struct {
	Keys                   []adminapi.Key
	Q, Team, State, Filter string
	Teams                  []string
	Total                  int
	CanCreate              bool
}

func (c *Console) keys(r *http.Request, v *view) error {
	q := r.URL.Query()
	d := keysData{Q: strings.TrimSpace(q.Get("q")), Team: q.Get("team"), State: q.Get("state"), Filter: q.Get("filter"), CanCreate: v.Me.Can("keys.create")}
	path := "/keys"
	if d.Filter == "unused" {
		path += "?unused=30d"
	}
	var list adminapi.KeyList
	if err := c.api.get(r, path, &list); err != nil {
		return err
	}
	d.Total = len(list.Keys)
	teams := map[string]bool{}
	soon := c.opts.Now().Add(7 * 24 * time.Hour)
	for _, k := range list.Keys {
		if k.Team != "" {
			teams[k.Team] = true
		}
		if d.Q != "" && !strings.Contains(strings.ToLower(k.Name+" "+k.Prefix+" "+k.Owner+" "+k.ID), strings.ToLower(d.Q)) {
			continue
		}
		if d.Team != "" && k.Team != d.Team {
			continue
		}
		if d.State != "" && keyState(k) != d.State {
			continue
		}
		if d.Filter == "expiring" && (k.ExpiresAt == nil || k.ExpiresAt.After(soon) || k.Status != "active") {
			continue
		}
		d.Keys = append(d.Keys, k)
	}
	for t := range teams {
		d.Teams = append(d.Teams, t)
	}
	slices.Sort(d.Teams)
	if len(d.Keys) > 500 {
		d.Keys = d.Keys[:500]
	}
	v.Data = d
	return nil
}

type newKeyData struct {
	Teams   []adminapi.Team
	Created *adminapi.CreatedKey
	Form    url.Values
}

func (c *Console) newKeyForm(r *http.Request, v *view) error {
	d := newKeyData{Form: url.Values{}}
	if v.Me.Can("teams.read") {
		var tl adminapi.TeamList
		if err := c.api.get(r, "/teams", &tl); err != nil {
			return err
		}
		d.Teams = tl.Teams
	}
	v.Data = d
	return nil
}

// createKey makes a key from the form and shows its secret this once. The
// page is not stored by the browser (Cache-Control: no-store) and the
// secret is in no URL.
func (c *Console) createKey(w http.ResponseWriter, r *http.Request) {
	v, ok := c.begin(w, r, "New key")
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, v, &apiError{Status: http.StatusBadRequest, Message: "The form could not be read."})
		return
	}
	f := r.PostForm
	req := adminapi.CreateKeyRequest{
		Name: strings.TrimSpace(f.Get("name")), Env: f.Get("env"), Team: f.Get("team"),
		AllowModels: splitList(f.Get("models")), AllowProviders: splitList(f.Get("providers")),
		ExpiresIn: strings.TrimSpace(f.Get("expires_in")),
	}
	if s := strings.TrimSpace(f.Get("budget")); s != "" {
		b, err := adminapi.ParseBudget(s)
		if err != nil {
			c.fail(w, r, v, &apiError{Status: http.StatusBadRequest, Message: "Budget: " + err.Error()})
			return
		}
		req.Limits.Budgets = []adminapi.Budget{b}
	}
	if s := strings.TrimSpace(f.Get("rpm")); s != "" {
		var n int64
		if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
			c.fail(w, r, v, &apiError{Status: http.StatusBadRequest, Message: "Requests a minute: give a whole number of 1 or more."})
			return
		}
		req.Limits.RPM = n
	}
	var created adminapi.CreatedKey
	if _, err := c.api.do(r, http.MethodPost, "/keys", req, &created); err != nil {
		c.fail(w, r, v, err)
		return
	}
	v.Data = newKeyData{Created: &created}
	c.render(w, r, http.StatusCreated, "newkey", v)
}

type keyData struct {
	Key        adminapi.Key
	Usage      adminapi.KeyUsage
	Events     []adminapi.AuditEvent
	Chart      chartData
	Use        []limitUse
	Rotated    *adminapi.RotatedKey
	CanSuspend bool
	CanRevoke  bool
	CanRotate  bool
}

// limitUse is one limit of a key and how much of it is used.
type limitUse struct {
	What    string
	Used    string
	Percent float64
}

func (c *Console) key(r *http.Request, v *view) error {
	ref := r.PathValue("ref")
	var d keyData
	if err := c.api.get(r, "/keys/"+seg(ref), &d.Key); err != nil {
		return err
	}
	v.Title = "Key " + d.Key.Name
	if v.Me.Can("usage.read") {
		if err := c.api.get(r, "/keys/"+seg(d.Key.ID)+"/usage?days=30", &d.Usage); err != nil && statusOf(err) != http.StatusForbidden && statusOf(err) != http.StatusNotFound {
			return err
		}
		var ev adminapi.KeyEvents
		if err := c.api.get(r, "/keys/"+seg(d.Key.ID)+"/events?limit=30", &ev); err == nil {
			d.Events = ev.Events
		} else if statusOf(err) != http.StatusForbidden && statusOf(err) != http.StatusNotFound && statusOf(err) != http.StatusNotImplemented {
			return err
		}
	}
	d.Chart, d.Use = keyUsage(c.opts.Now(), d.Key, d.Usage.Rows)
	d.CanSuspend, d.CanRevoke, d.CanRotate = v.Me.Can("keys.suspend"), v.Me.Can("keys.revoke"), v.Me.Can("keys.rotate")
	v.Data = d
	return nil
}

// keyUsage turns a key's daily usage into its chart and the use of its
// daily and monthly limits.
func keyUsage(now time.Time, k adminapi.Key, rows []adminapi.UsageRow) (chartData, []limitUse) {
	byDay := map[string]adminapi.UsageRow{}
	for _, u := range rows {
		t := byDay[u.Date]
		t.Requests += u.Requests
		t.Denials += u.Denials
		t.MicroUSD += u.MicroUSD
		byDay[u.Date] = t
	}
	ch := chartData{Title: "Last 30 days, by day"}
	req, ref, usd := chartSeries{Label: "Requests"}, chartSeries{Label: "Refusals"}, chartSeries{Label: "Spend (USD)", Money: true}
	var month adminapi.UsageRow
	today := byDay[now.Format(time.DateOnly)]
	for i := 29; i >= 0; i-- {
		d := now.AddDate(0, 0, -i)
		u := byDay[d.Format(time.DateOnly)]
		ch.X = append(ch.X, time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC).Unix())
		req.Values = append(req.Values, float64(u.Requests))
		ref.Values = append(ref.Values, float64(u.Denials))
		usd.Values = append(usd.Values, float64(u.MicroUSD)/1e6)
	}
	for date, u := range byDay {
		if strings.HasPrefix(date, now.Format("2006-01")) {
			month.Requests += u.Requests
			month.MicroUSD += u.MicroUSD
		}
	}
	ch.Series = []chartSeries{req, ref, usd}
	var use []limitUse
	of := func(p string) adminapi.UsageRow {
		if p == adminapi.PeriodDay {
			return today
		}
		return month
	}
	for _, b := range k.Limits.Budgets {
		if b.Period == adminapi.PeriodTotal || b.MicroUSD <= 0 {
			continue
		}
		u := of(b.Period)
		use = append(use, limitUse{What: fmt.Sprintf("$%.2f per %s", float64(b.MicroUSD)/1e6, b.Period),
			Used: fmt.Sprintf("$%.2f", float64(u.MicroUSD)/1e6), Percent: min(100, float64(u.MicroUSD)*100/float64(b.MicroUSD))})
	}
	for _, q := range k.Limits.Quotas {
		if q.Period == adminapi.PeriodTotal || q.Unit != adminapi.UnitRequests || q.Limit <= 0 {
			continue
		}
		u := of(q.Period)
		use = append(use, limitUse{What: fmt.Sprintf("%d requests per %s", q.Limit, q.Period),
			Used: fmt.Sprint(u.Requests), Percent: min(100, float64(u.Requests)*100/float64(q.Limit))})
	}
	return ch, use
}

// keyAction suspends, resumes, rotates, revokes or requires step-up for a
// key. A rotation shows the successor's secret this once.
func (c *Console) keyAction(w http.ResponseWriter, r *http.Request) {
	ref, action := r.PathValue("ref"), r.PathValue("action")
	api := map[string]string{"suspend": "suspend", "resume": "resume", "revoke": "revoke", "rotate": "rotate", "step-up": "step-up"}[action]
	done := map[string]string{"suspend": "suspended", "resume": "resumed", "revoke": "revoked", "step-up": "step-up"}[action]
	if api == "" {
		v, ok := c.begin(w, r, "")
		if ok {
			c.fail(w, r, v, &apiError{Status: http.StatusNotFound, Message: "There is no such key action."})
		}
		return
	}
	c.action(func(r *http.Request, v *view) (string, error) {
		if api == "rotate" {
			var rot adminapi.RotatedKey
			if _, err := c.api.do(r, http.MethodPost, "/keys/"+seg(ref)+"/rotate", adminapi.RotateKeyRequest{Grace: r.PostForm.Get("grace")}, &rot); err != nil {
				return "", err
			}
			v.Title = "Key rotated"
			v.Data = newKeyData{Created: &adminapi.CreatedKey{Key: rot.Key, Secret: rot.Secret}}
			c.render(w, r, http.StatusOK, "newkey", v)
			return "", nil
		}
		var k adminapi.Key
		if _, err := c.api.do(r, http.MethodPost, "/keys/"+seg(ref)+"/"+api, nil, &k); err != nil {
			return "", err
		}
		back := "/keys/" + url.PathEscape(k.ID)
		if from := r.PostForm.Get("back"); from == "/alerts" {
			back = from
		}
		return back + "?done=" + done, nil
	})(w, r)
}

type providersData struct {
	Providers []adminapi.Provider
	CanWrite  bool
	// Health is the aliases with their deployments' breakers and recent
	// errors, as the node that served the page sees them; nil when this
	// keygate routes no aliases.
	Health *adminapi.RoutingHealth
	// MCP is the MCP servers, with the caller's own authorization at
	// those that act for a person.
	MCP []mcpRow
}

func (c *Console) providers(r *http.Request, v *view) error {
	var pl adminapi.ProviderList
	if err := c.api.get(r, "/providers", &pl); err != nil {
		return err
	}
	d := providersData{Providers: pl.Providers, CanWrite: v.Me.Can("providers.write")}
	var err error
	if d.MCP, err = c.mcpServers(r); err != nil {
		return err
	}
	var h adminapi.RoutingHealth
	if err := c.api.get(r, "/routing/health", &h); err == nil {
		d.Health = &h
	} else if statusOf(err) != http.StatusNotImplemented {
		return err
	}
	v.Data = d
	return nil
}

// addProvider stores a new provider with its key, which is sent once in
// the form body and never shown again.
func (c *Console) addProvider(r *http.Request, v *view) (string, error) {
	f := r.PostForm
	req := adminapi.CreateProviderRequest{Name: strings.TrimSpace(f.Get("name")), Preset: f.Get("preset"), Dialect: f.Get("dialect"),
		BaseURL: strings.TrimSpace(f.Get("base_url")), Models: splitList(f.Get("models")), APIKey: strings.TrimSpace(f.Get("api_key"))}
	if _, err := c.api.do(r, http.MethodPost, "/providers", req, nil); err != nil {
		return "", err
	}
	return "/providers?done=provider", nil
}

func (c *Console) rotateProvider(r *http.Request, v *view) (string, error) {
	req := adminapi.RotateProviderRequest{APIKey: strings.TrimSpace(r.PostForm.Get("api_key")), Grace: r.PostForm.Get("grace")}
	if _, err := c.api.do(r, http.MethodPost, "/providers/"+seg(r.PathValue("name"))+"/rotate", req, nil); err != nil {
		return "", err
	}
	return "/providers?done=provider", nil
}

type peopleData struct {
	Teams      []adminapi.Team
	Users      []adminapi.User
	CanDisable bool
}

func (c *Console) people(r *http.Request, v *view) error {
	var d peopleData
	if v.Me.Can("teams.read") {
		var tl adminapi.TeamList
		if err := c.api.get(r, "/teams", &tl); err != nil {
			return err
		}
		d.Teams = tl.Teams
	}
	if v.Me.CanGlobally("users.read") {
		var ul adminapi.UserList
		if err := c.api.get(r, "/users", &ul); err != nil {
			return err
		}
		d.Users = ul.Users
	}
	d.CanDisable = v.Me.CanGlobally("users.disable")
	v.Data = d
	return nil
}

func (c *Console) disableUser(r *http.Request, v *view) (string, error) {
	if _, err := c.api.do(r, http.MethodPost, "/users/"+seg(r.PathValue("name"))+"/disable", nil, nil); err != nil {
		return "", err
	}
	return "/people?done=disabled", nil
}

type auditData struct {
	Events    []auditRow
	Key, Type string
	Since     string
	Verified  *adminapi.AuditVerification
	CanVerify bool
}

// auditRow is an event for the list, with its JSON to open.
type auditRow struct {
	adminapi.AuditEvent
	JSON string
}

// auditQuery is the audit search as the API takes it, from the page's
// query (key, type, since), newest first.
func auditQuery(q url.Values, limit int) string {
	v := url.Values{"order": {"newest"}, "limit": {fmt.Sprint(limit)}}
	for _, k := range []string{"key", "type", "since"} {
		if s := strings.TrimSpace(q.Get(k)); s != "" {
			v.Set(k, s)
		}
	}
	return "/audit/events?" + v.Encode()
}

func (c *Console) audit(r *http.Request, v *view) error {
	q := r.URL.Query()
	d := auditData{Key: q.Get("key"), Type: q.Get("type"), Since: cmp.Or(q.Get("since"), "24h"), CanVerify: v.Me.Can("audit.verify")}
	q.Set("since", d.Since)
	var evs adminapi.AuditEvents
	if err := c.api.get(r, auditQuery(q, 200), &evs); err != nil {
		return err
	}
	for _, raw := range evs.Events {
		var row auditRow
		if json.Unmarshal(raw, &row.AuditEvent) != nil {
			continue
		}
		var pretty strings.Builder
		enc := json.NewEncoder(&pretty)
		enc.SetIndent("", "  ")
		_ = enc.Encode(json.RawMessage(raw))
		row.JSON = pretty.String()
		d.Events = append(d.Events, row)
	}
	if q.Get("verify") == "1" && d.CanVerify {
		var ver adminapi.AuditVerification
		if err := c.api.get(r, "/audit/verify", &ver); err != nil {
			return err
		}
		d.Verified = &ver
	}
	v.Data = d
	return nil
}

// auditExport downloads the events the search names as JSON lines.
func (c *Console) auditExport(w http.ResponseWriter, r *http.Request) {
	v, ok := c.begin(w, r, "Audit")
	if !ok {
		return
	}
	var evs adminapi.AuditEvents
	if err := c.api.get(r, auditQuery(r.URL.Query(), 10000), &evs); err != nil {
		c.fail(w, r, v, err)
		return
	}
	w.Header().Set("Content-Type", "application/jsonl")
	w.Header().Set("Content-Disposition", `attachment; filename="keygate-audit.jsonl"`)
	for _, ev := range evs.Events {
		_, _ = w.Write(ev)
		_, _ = w.Write([]byte("\n"))
	}
}

type alertsData struct {
	Alerts     []adminapi.Alert
	Approvals  []adminapi.Approval
	CanResolve bool
	CanSuspend bool
	CanDecide  bool
	All        bool
}

func (c *Console) alerts(r *http.Request, v *view) error {
	d := alertsData{CanResolve: v.Me.CanGlobally("alerts.resolve"), CanSuspend: v.Me.Can("keys.suspend"), CanDecide: v.Me.CanGlobally("approvals.decide"),
		All: r.URL.Query().Get("state") == "all"}
	if v.Me.CanGlobally("alerts.read") {
		var al adminapi.AlertList
		path := "/alerts"
		if d.All {
			path += "?state=all"
		}
		if err := c.api.get(r, path, &al); err != nil {
			return err
		}
		d.Alerts = al.Alerts
	}
	if v.Me.Can("approvals.read") {
		var ap adminapi.ApprovalList
		if err := c.api.get(r, "/approvals", &ap); err != nil {
			return err
		}
		for _, a := range ap.Approvals {
			if a.Status == "pending" {
				d.Approvals = append(d.Approvals, a)
			}
		}
	}
	v.Data = d
	return nil
}

// alertAction acknowledges or resolves an alert, or suspends its key or
// requires step-up for it.
func (c *Console) alertAction(r *http.Request, v *view) (string, error) {
	id := r.PathValue("id")
	switch action := r.PathValue("action"); action {
	case "ack", "resolve":
		if _, err := c.api.do(r, http.MethodPost, "/alerts/"+seg(id)+"/"+action, nil, nil); err != nil {
			return "", err
		}
		return "/alerts?done=" + map[string]string{"ack": "acknowledged", "resolve": "resolved"}[action], nil
	case "suspend", "step-up":
		key := r.PostForm.Get("key")
		if key == "" {
			return "", &apiError{Status: http.StatusBadRequest, Message: "This alert names no key."}
		}
		if _, err := c.api.do(r, http.MethodPost, "/keys/"+seg(key)+"/"+action, nil, nil); err != nil {
			return "", err
		}
		return "/alerts?done=" + map[string]string{"suspend": "suspended", "step-up": "step-up"}[action], nil
	}
	return "", &apiError{Status: http.StatusNotFound, Message: "There is no such alert action."}
}

func (c *Console) decide(r *http.Request, v *view) (string, error) {
	d := r.PathValue("decision")
	if d != "approve" && d != "deny" {
		return "", &apiError{Status: http.StatusNotFound, Message: "Approve or deny."}
	}
	if _, err := c.api.do(r, http.MethodPost, "/approvals/"+seg(r.PathValue("id"))+"/"+d, nil, nil); err != nil {
		return "", err
	}
	return "/alerts?done=" + map[string]string{"approve": "approved", "deny": "denied"}[d], nil
}

type vaultData struct {
	Status   *adminapi.VaultStatus
	Secrets  []adminapi.Secret
	CanRead  bool
	Revealed *revealed
}

// revealed is a secret value read on request, shown once.
type revealed struct {
	Name, Value string
	Version     int
}

func (c *Console) vault(r *http.Request, v *view) error {
	var d vaultData
	if v.Me.CanGlobally("vault.status") {
		var st adminapi.VaultStatus
		if err := c.api.get(r, "/vault/status", &st); err != nil && statusOf(err) != http.StatusNotImplemented {
			return err
		} else if err == nil {
			d.Status = &st
		}
	}
	if v.Me.CanGlobally("secrets.list") {
		var sl adminapi.SecretList
		if err := c.api.get(r, "/secrets", &sl); err != nil {
			return err
		}
		d.Secrets = sl.Secrets
	}
	d.CanRead = v.Me.CanGlobally("secrets.read_value")
	v.Data = d
	return nil
}

// readSecret reads one secret's value for a user who may, on a POST (so
// the name and value are in no URL), and shows it once. The API decides
// the permission, asks for a fresh second factor where sign-in requires
// one, and puts the read on the audit trail.
func (c *Console) readSecret(w http.ResponseWriter, r *http.Request) {
	c.action(func(r *http.Request, v *view) (string, error) {
		name := strings.Trim(strings.TrimSpace(r.PostForm.Get("name")), "/")
		if name == "" {
			return "", &apiError{Status: http.StatusBadRequest, Message: "Name the secret to read."}
		}
		var val adminapi.SecretValue
		if _, err := c.api.do(r, http.MethodGet, "/secrets/"+escapePath(name)+":value", nil, &val); err != nil {
			return "", err
		}
		v.Title = "Vault"
		if err := c.vault(r, v); err != nil {
			return "", err
		}
		d := v.Data.(vaultData)
		d.Revealed = &revealed{Name: name, Value: val.Value, Version: val.Version}
		v.Data = d
		c.render(w, r, http.StatusOK, "vault", v)
		return "", nil
	})(w, r)
}

// escapePath escapes each segment of a secret's path.
func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i := range parts {
		parts[i] = url.PathEscape(parts[i])
	}
	return strings.Join(parts, "/")
}
