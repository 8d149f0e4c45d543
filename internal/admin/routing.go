package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/routing"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// RoutingStore keeps the deployments, aliases and passthrough services
// managed through the API.
type RoutingStore interface {
	ListRoutingEntries(ctx context.Context) ([]store.RoutingEntry, int64, error)
	ApplyRoutingChanges(ctx context.Context, base int64, changes []store.RoutingChange) (int64, error)
}

// routingAttempts bounds how often a change is planned again when another
// change landed between planning and writing.
const routingAttempts = 3

// kindOf reads the {kind} of a routing path: deployments, aliases or
// services (the singular is accepted too).
func kindOf(r *http.Request) (string, error) {
	switch k := r.PathValue("kind"); k {
	case "deployments", "deployment":
		return store.RoutingDeployment, nil
	case "aliases", "alias":
		return store.RoutingAlias, nil
	case "services", "service":
		return store.RoutingService, nil
	default:
		return "", httpError{http.StatusNotFound, "not_found", fmt.Sprintf("no kind of routing entry %q: use deployments, aliases or services", k)}
	}
}

// routingReady answers 501 when this API keeps no routing in its database.
func (a *API) routingReady(w http.ResponseWriter) bool {
	if a.opts.Routing == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate keeps no routing in its database")
		return false
	}
	return true
}

// routingState reads the database's entries and their generation.
func (a *API) routingState(ctx context.Context) ([]routing.Entry, int64, error) {
	rows, gen, err := a.opts.Routing.ListRoutingEntries(ctx)
	if err != nil {
		return nil, 0, err
	}
	es, err := routing.DecodeAll(rows)
	return es, gen, err
}

func (a *API) listRouting(w http.ResponseWriter, r *http.Request) {
	if !a.routingReady(w) {
		return
	}
	db, gen, err := a.routingState(r.Context())
	if err != nil {
		a.internal(w, "read the routing", err)
		return
	}
	all := append(routing.FileEntries(a.opts.RoutingFile.Routing, a.opts.RoutingFile.Services), db...)
	routing.Sort(all)
	out := adminapi.RoutingList{Generation: gen, Entries: make([]adminapi.RoutingEntry, 0, len(all))}
	for _, e := range all {
		out.Entries = append(out.Entries, routingView(e))
	}
	web.WriteJSON(w, http.StatusOK, out)
}

func (a *API) getRouting(w http.ResponseWriter, r *http.Request) {
	if !a.routingReady(w) {
		return
	}
	kind, err := kindOf(r)
	if err != nil {
		a.targetError(w, err)
		return
	}
	name := r.PathValue("name")
	db, _, err := a.routingState(r.Context())
	if err != nil {
		a.internal(w, "read the routing", err)
		return
	}
	for _, e := range append(routing.FileEntries(a.opts.RoutingFile.Routing, a.opts.RoutingFile.Services), db...) {
		if e.Kind == kind && e.Name == name {
			web.WriteJSON(w, http.StatusOK, routingView(e))
			return
		}
	}
	writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no %s named %q (keygate route list shows them)", kind, name))
}

// createRouting serves POST /routing/{kind}: a new entry.
func (a *API) createRouting(w http.ResponseWriter, r *http.Request) {
	a.putRouting(w, r, true)
}

// replaceRouting serves PUT /routing/{kind}/{name...}: create or replace.
func (a *API) replaceRouting(w http.ResponseWriter, r *http.Request) {
	a.putRouting(w, r, false)
}

func (a *API) putRouting(w http.ResponseWriter, r *http.Request, create bool) {
	if !a.routingReady(w) {
		return
	}
	kind, err := kindOf(r)
	if err != nil {
		a.targetError(w, err)
		return
	}
	var req adminapi.RoutingEntry
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if req.Kind != "" && req.Kind != kind {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("kind %q in the body does not match the path's %s", req.Kind, kind))
		return
	}
	if !create && req.Name != "" && req.Name != r.PathValue("name") {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("name %q in the body does not match the path's %q; to rename, create the new entry and remove the old", req.Name, r.PathValue("name")))
		return
	}
	if !create {
		req.Name = r.PathValue("name")
	}
	req.Kind = kind
	e, err := entryFrom(req)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	status := http.StatusOK
	if create {
		status = http.StatusCreated
	}
	a.changeRouting(w, r, status, false, forced(r), func(current []routing.Entry) ([]routing.Change, error) {
		if err := a.notInFile(e.Kind, e.Name); err != nil {
			return nil, err
		}
		i := slices.IndexFunc(current, func(c routing.Entry) bool { return c.Key() == e.Key() })
		switch {
		case i < 0:
			return []routing.Change{{Op: store.RoutingCreate, Kind: e.Kind, Name: e.Name, After: &e}}, nil
		case create:
			return nil, httpError{http.StatusConflict, "conflict", fmt.Sprintf("a %s named %q already exists; replace it with keygate route add --replace, or remove it first", e.Kind, e.Name)}
		case routing.Same(current[i], e):
			return nil, nil
		}
		return []routing.Change{{Op: store.RoutingUpdate, Kind: e.Kind, Name: e.Name, Before: &current[i], After: &e}}, nil
	})
}

func (a *API) deleteRouting(w http.ResponseWriter, r *http.Request) {
	if !a.routingReady(w) {
		return
	}
	kind, err := kindOf(r)
	if err != nil {
		a.targetError(w, err)
		return
	}
	name := r.PathValue("name")
	a.changeRouting(w, r, http.StatusOK, false, forced(r), func(current []routing.Entry) ([]routing.Change, error) {
		if err := a.notInFile(kind, name); err != nil {
			return nil, err
		}
		i := slices.IndexFunc(current, func(c routing.Entry) bool { return c.Kind == kind && c.Name == name })
		if i < 0 {
			return nil, httpError{http.StatusNotFound, "not_found", fmt.Sprintf("no %s named %q in the database (keygate route list shows them)", kind, name)}
		}
		return []routing.Change{{Op: store.RoutingDelete, Kind: kind, Name: name, Before: &current[i]}}, nil
	})
}

func (a *API) applyRouting(w http.ResponseWriter, r *http.Request) {
	if !a.routingReady(w) {
		return
	}
	var req adminapi.ApplyRoutingRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	desired, err := documentEntries(req.Document)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	a.changeRouting(w, r, http.StatusOK, req.DryRun, req.Force, func(current []routing.Entry) ([]routing.Change, error) {
		var errs []error
		for _, e := range desired {
			if err := a.notInFile(e.Kind, e.Name); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return nil, httpError{http.StatusConflict, "conflict", errors.Join(errs...).Error()}
		}
		return routing.Diff(current, desired), nil
	})
}

// forced reads ?force=true.
func forced(r *http.Request) bool {
	f, _ := strconv.ParseBool(r.URL.Query().Get("force"))
	return f
}

// notInFile refuses to manage an entry the configuration file defines.
func (a *API) notInFile(kind, name string) error {
	for _, e := range routing.FileEntries(a.opts.RoutingFile.Routing, a.opts.RoutingFile.Services) {
		if e.Kind == kind && e.Name == name {
			return httpError{http.StatusConflict, "defined_in_file", fmt.Sprintf(
				"%s %q is defined in keygate's configuration file, which the API does not change; edit the file and restart, or remove it from the file to manage it here", kind, name)}
		}
	}
	return nil
}

// changeRouting plans a change of the database's routing (plan turns the
// current entries into changes), checks the routing it leads to, and,
// unless dryRun, writes it: refused when it would leave a key with
// nothing to reach, unless force. It answers with the plan.
func (a *API) changeRouting(w http.ResponseWriter, r *http.Request, status int, dryRun, force bool, plan func(current []routing.Entry) ([]routing.Change, error)) {
	ctx := r.Context()
	for range routingAttempts {
		current, gen, err := a.routingState(ctx)
		if err != nil {
			a.internal(w, "read the routing", err)
			return
		}
		changes, err := plan(current)
		if err != nil {
			a.targetError(w, err)
			return
		}
		out, err := a.checkRouting(ctx, current, changes)
		if err != nil {
			a.targetError(w, err)
			return
		}
		out.Generation = gen
		if dryRun {
			web.WriteJSON(w, http.StatusOK, out)
			return
		}
		if len(out.Breaks) > 0 && !force {
			writeError(w, http.StatusConflict, "would_break", "this change would leave keys with nothing to reach, so nothing was changed:\n  "+
				strings.Join(out.Breaks, "\n  ")+"\nchange those keys first (keygate key update), or repeat with --force to change routing anyway")
			return
		}
		sc := make([]store.RoutingChange, 0, len(changes))
		now := a.opts.Now().UTC()
		by := principal(r).ID
		for _, c := range changes {
			row := store.RoutingEntry{Kind: c.Kind, Name: c.Name, CreatedAt: now, UpdatedAt: now, UpdatedBy: by}
			if c.After != nil {
				if row.Spec, err = c.After.Spec(); err != nil {
					a.internal(w, "encode a routing entry", err)
					return
				}
			}
			sc = append(sc, store.RoutingChange{Op: c.Op, Entry: row})
		}
		newGen, err := a.opts.Routing.ApplyRoutingChanges(ctx, gen, sc)
		if errors.Is(err, store.ErrStale) {
			continue // another change landed since: plan again
		}
		if err != nil {
			a.internal(w, "change the routing", err)
			return
		}
		out.Applied, out.Generation = len(changes) > 0, newGen
		for _, c := range changes {
			f := map[string]string{"op": c.Op, "before": specText(c.Before), "after": specText(c.After), "generation": strconv.FormatInt(newGen, 10)}
			if len(out.Breaks) > 0 {
				f["forced_breaks"] = strings.Join(out.Breaks, "; ")
			}
			a.auditEvent(r, "routing.change", fmt.Sprintf("%s %s", c.Kind, c.Name), "allow", f)
		}
		if out.Applied {
			a.providersChanged(r)
		}
		web.WriteJSON(w, status, out)
		return
	}
	writeError(w, http.StatusConflict, "conflict", "the routing kept changing while this change was planned; try again")
}

// checkRouting judges the routing changes lead to: whole and valid,
// providers registered, and which keys it would leave with nothing to
// reach.
func (a *API) checkRouting(ctx context.Context, current []routing.Entry, changes []routing.Change) (adminapi.RoutingPlan, error) {
	out := adminapi.RoutingPlan{Changes: make([]adminapi.RoutingChange, 0, len(changes))}
	for _, c := range changes {
		rc := adminapi.RoutingChange{Op: c.Op, Kind: c.Kind, Name: c.Name}
		if c.Before != nil {
			v := routingView(*c.Before)
			rc.Before = &v
		}
		if c.After != nil {
			v := routingView(*c.After)
			rc.After = &v
		}
		out.Changes = append(out.Changes, rc)
	}
	before, _ := routing.Merge(a.opts.RoutingFile, current)
	after, err := routing.Merge(a.opts.RoutingFile, routing.Apply(current, changes))
	if err != nil {
		return out, httpError{http.StatusConflict, "defined_in_file", err.Error()}
	}
	if err := routing.Check(after); err != nil {
		return out, httpError{http.StatusBadRequest, "bad_request", "the routing would not be valid: " + err.Error()}
	}
	providers, err := a.opts.Store.ListProviders(ctx)
	if err != nil {
		return out, fmt.Errorf("list providers: %w", err)
	}
	registered := map[string]bool{}
	for _, p := range providers {
		registered[p.Name] = true
	}
	var errs []error
	for _, c := range changes {
		if c.After == nil || c.After.Deployment == nil {
			continue
		}
		d := c.After.Deployment
		for _, p := range append([]string{d.Provider}, d.Providers...) {
			if p != "" && !registered[p] {
				errs = append(errs, fmt.Errorf("deployment %q names provider %q, which is not registered (keygate provider list shows them; keygate provider add registers one)", c.Name, p))
			}
		}
	}
	if len(errs) > 0 {
		return out, httpError{http.StatusBadRequest, "bad_request", errors.Join(errs...).Error()}
	}
	for _, c := range changes {
		if c.After == nil || c.After.Service == nil {
			continue
		}
		secret := c.After.Service.Secret
		if _, err := a.opts.Store.GetSecretMeta(ctx, secret); errors.Is(err, store.ErrNotFound) {
			out.Warnings = append(out.Warnings, fmt.Sprintf("service %q: its vault secret %q is not stored, so the service answers 503 until it is (keygate secret put %s)", c.Name, secret, secret))
		}
	}
	keys, err := a.opts.Store.ListKeys(ctx)
	if err != nil {
		return out, fmt.Errorf("list keys: %w", err)
	}
	for _, b := range routing.Breaks(keys, providers, before, after, a.opts.Now()) {
		out.Breaks = append(out.Breaks, b.String())
	}
	return out, nil
}

// entryFrom checks an entry from a request body.
func entryFrom(req adminapi.RoutingEntry) (routing.Entry, error) {
	e := routing.Entry{Kind: req.Kind, Name: strings.TrimSpace(req.Name), Source: routing.SourceDatabase}
	if err := routing.CheckName(e.Kind, e.Name); err != nil {
		return e, err
	}
	set := 0
	for _, p := range []bool{req.Deployment != nil, req.Alias != nil, req.Service != nil} {
		if p {
			set++
		}
	}
	switch {
	case set != 1:
		return e, fmt.Errorf("give exactly one of deployment, alias and service")
	case e.Kind == store.RoutingDeployment && req.Deployment != nil:
		d := *req.Deployment
		if d.Name != "" && d.Name != e.Name {
			return e, fmt.Errorf("deployment.name %q does not match the entry's name %q", d.Name, e.Name)
		}
		d.Name = e.Name
		e.Deployment = &d
	case e.Kind == store.RoutingAlias && req.Alias != nil:
		e.Alias = req.Alias
	case e.Kind == store.RoutingService && req.Service != nil:
		e.Service = req.Service
	default:
		return e, fmt.Errorf("a %s entry takes the %s field", e.Kind, e.Kind)
	}
	return e, nil
}

// documentEntries reads an apply document into the entries it declares.
func documentEntries(doc adminapi.RoutingDocument) ([]routing.Entry, error) {
	var out []routing.Entry
	var errs []error
	seen := map[string]bool{}
	for _, d := range doc.Routing.Deployments {
		e, err := entryFrom(adminapi.RoutingEntry{Kind: store.RoutingDeployment, Name: d.Name, Deployment: &d})
		if err == nil && seen[e.Key()] {
			err = fmt.Errorf("deployment %q is declared twice", d.Name)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("routing.deployments: %w", err))
			continue
		}
		seen[e.Key()] = true
		out = append(out, e)
	}
	for name, al := range doc.Routing.Aliases {
		e, err := entryFrom(adminapi.RoutingEntry{Kind: store.RoutingAlias, Name: name, Alias: &al})
		if err != nil {
			errs = append(errs, fmt.Errorf("routing.aliases: %w", err))
			continue
		}
		out = append(out, e)
	}
	for name, s := range doc.Services {
		e, err := entryFrom(adminapi.RoutingEntry{Kind: store.RoutingService, Name: name, Service: &s})
		if err != nil {
			errs = append(errs, fmt.Errorf("services: %w", err))
			continue
		}
		out = append(out, e)
	}
	routing.Sort(out)
	return out, errors.Join(errs...)
}

// routingView is an entry as the API shows it.
func routingView(e routing.Entry) adminapi.RoutingEntry {
	v := adminapi.RoutingEntry{Kind: e.Kind, Name: e.Name, Source: e.Source, Deployment: e.Deployment, Alias: e.Alias, Service: e.Service}
	if e.Stored != nil {
		t := e.Stored.UpdatedAt
		v.UpdatedAt, v.UpdatedBy = &t, e.Stored.UpdatedBy
	}
	return v
}

// specText is an entry's definition for the audit trail (it names vault
// secrets, never holds one); "" for none.
func specText(e *routing.Entry) string {
	if e == nil {
		return ""
	}
	b, err := e.Spec()
	if err != nil {
		return ""
	}
	return string(b)
}

// routingHealth answers GET /routing/health: this node's aliases with their
// deployments' breakers and recent upstream errors.
func (a *API) routingHealth(w http.ResponseWriter, r *http.Request) {
	if a.opts.RoutingHealth == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate serves no model routing, so it keeps no routing health")
		return
	}
	out := adminapi.RoutingHealth{Node: a.opts.Node, GeneratedAt: a.opts.Now().UTC(), Aliases: a.opts.RoutingHealth()}
	if out.Aliases == nil {
		out.Aliases = []adminapi.AliasHealth{}
	}
	web.WriteJSON(w, http.StatusOK, out)
}
