// Package leakreport acts on keygate credentials reported leaked: by a
// secret-scanning partner such as GitHub (PartnerHandler, an http.Handler
// speaking GitHub's secret scanning partner format), or by a person
// (`keygate key report-leak`, through the admin API). Each reported kg_ key
// is checked for shape and checksum, looked up by its HMAC, then revoked
// or suspended, with an alert and an audit event; the reporter learns
// whether it was a true or a false positive.
package leakreport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/keylife"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// Action is what happens to a reported key.
type Action string

// Actions a Responder takes.
const (
	ActionRevoke  Action = "revoke"  // the key stops working for good
	ActionSuspend Action = "suspend" // the key stops working until resumed
)

// RuleLeakReported is the rule of the alert raised for a reported key.
const RuleLeakReported = "leak-reported"

// Store is the persistence a Responder needs; *store.Store has it.
type Store interface {
	GetKeyByHash(ctx context.Context, hash []byte) (store.Key, error)
}

// Keys revokes and suspends keys with every side effect (this node's
// cache, the other nodes, the audit trail); *keylife.Service is one.
type Keys interface {
	Revoke(ctx context.Context, id string, by keylife.Actor) (keylife.Change, error)
	Suspend(ctx context.Context, id string, by keylife.Actor) (keylife.Change, error)
}

// AdminTokens, when a Responder has it, lets a reported admin credential
// (kg_admin_...) be revoked too; *store.Store has it.
type AdminTokens interface {
	GetAdminTokenByHash(ctx context.Context, hash []byte) (store.AdminToken, error)
	RevokeAdminToken(ctx context.Context, id string, at time.Time) error
}

// Hasher computes a key's stored HMAC; *apikey.Hasher is one.
type Hasher interface {
	Hash(raw string) [32]byte
}

// Responder acts on reports. Store, Hasher and Keys are required.
type Responder struct {
	Store  Store
	Hasher Hasher
	// Keys revokes or suspends a reported key.
	Keys Keys
	// Admin, when set, handles reported admin credentials.
	Admin AdminTokens
	// Action is what happens to a reported key; empty means ActionRevoke.
	Action Action
	// Upstream, when set, is asked about a reported token that is not a
	// keygate credential: it reports whether the token is an upstream key
	// keygate holds in its vault (a provider's key), and what was done
	// about it (a key keygate mints is rotated). ok false means the token
	// is not one keygate holds either.
	Upstream func(ctx context.Context, token secret.String, rep Report) (target, action string, ok bool)
	// Alert raises an alert (delivered like the detectors'); Audit
	// records an event. Both may be nil.
	Alert func(detect.Alert)
	Audit func(audit.Event) error
	Log   *slog.Logger
	Now   func() time.Time
}

// Report is one token someone says was leaked.
type Report struct {
	Token    secret.String
	Type     string // the reporter's name for the token type
	URL      string // where it was found, if known
	Source   string // where on the reporter's side ("content", "commit", ...)
	Reporter string // who reported it ("github", "admin adm_...")
}

// Outcome is what a report led to.
type Outcome struct {
	// TruePositive is true when the token is a keygate credential this
	// keygate issued (active or not).
	TruePositive bool   `json:"true_positive"`
	KeyID        string `json:"key_id,omitempty"`
	KeyName      string `json:"key_name,omitempty"`
	Prefix       string `json:"prefix,omitempty"`
	// Action is "revoked", "suspended", "already revoked" or "already
	// suspended"; empty for a false positive.
	Action string `json:"action,omitempty"`
}

// Handle acts on one report. It returns an error only when keygate could
// not find out or could not act; a token that is not keygate's is a false
// positive, not an error. Nothing it logs, records or returns holds the
// token.
func (r *Responder) Handle(ctx context.Context, rep Report) (Outcome, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	raw := strings.TrimSpace(rep.Token.Reveal())
	p, err := apikey.Parse(raw)
	if err != nil {
		if r.Upstream != nil {
			if target, action, ok := r.Upstream(ctx, secret.New(raw), rep); ok {
				out := Outcome{TruePositive: true, KeyName: target, Action: action}
				r.record(rep, out, "an upstream key keygate holds")
				return out, nil
			}
		}
		r.record(rep, Outcome{}, "not a keygate credential: "+apikey.MalformedReason(err))
		return Outcome{}, nil
	}
	h := r.Hasher.Hash(raw)
	if p.Env == apikey.AdminEnv {
		return r.handleAdmin(ctx, rep, p, h[:], now().UTC())
	}
	k, err := r.Store.GetKeyByHash(ctx, h[:])
	if errors.Is(err, store.ErrNotFound) {
		r.record(rep, Outcome{Prefix: p.Prefix}, "well-formed, but this keygate never issued it")
		return Outcome{Prefix: p.Prefix}, nil
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("leakreport: looking up the reported key: %w", err)
	}
	out := Outcome{TruePositive: true, KeyID: k.ID, KeyName: k.Name, Prefix: k.Prefix}
	by := keylife.LeakReporter(rep.Reporter)
	switch {
	case k.RevokedAt != nil:
		out.Action = "already revoked"
	case r.Action == ActionSuspend:
		c, err := r.Keys.Suspend(ctx, k.ID, by)
		if err != nil {
			return out, fmt.Errorf("leakreport: suspending key %s: %w", k.ID, err)
		}
		out.Action = "suspended"
		if !c.Changed {
			out.Action = "already " + out.Action
		}
	default:
		c, err := r.Keys.Revoke(ctx, k.ID, by)
		if err != nil {
			return out, fmt.Errorf("leakreport: revoking key %s: %w", k.ID, err)
		}
		out.Action = "revoked"
		if !c.Changed {
			out.Action = "already " + out.Action
		}
	}
	r.raise(rep, out, now().UTC())
	r.record(rep, out, "")
	return out, nil
}

func (r *Responder) handleAdmin(ctx context.Context, rep Report, p apikey.Parsed, hash []byte, at time.Time) (Outcome, error) {
	out := Outcome{Prefix: p.Prefix}
	if r.Admin == nil {
		r.record(rep, out, "an admin credential, which this endpoint does not handle")
		return out, nil
	}
	tok, err := r.Admin.GetAdminTokenByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		r.record(rep, out, "well-formed, but this keygate never issued it")
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("leakreport: looking up the reported admin credential: %w", err)
	}
	out = Outcome{TruePositive: true, KeyID: tok.ID, KeyName: tok.Name, Prefix: p.Prefix, Action: "already revoked"}
	if tok.RevokedAt == nil {
		if err := r.Admin.RevokeAdminToken(ctx, tok.ID, at); err != nil {
			return out, fmt.Errorf("leakreport: revoking admin credential %s: %w", tok.ID, err)
		}
		out.Action = "revoked"
	}
	r.raise(rep, out, at)
	r.record(rep, out, "")
	return out, nil
}

// raise sends the alert for a true positive.
func (r *Responder) raise(rep Report, out Outcome, at time.Time) {
	where := rep.URL
	if where == "" {
		where = "an unknown place"
	}
	summary := fmt.Sprintf("keygate credential %s… (%s) reported leaked by %s at %s; %s", out.Prefix, out.KeyName, rep.Reporter, where, out.Action)
	if r.Log != nil {
		r.Log.Warn("leaked keygate credential reported", "key_id", out.KeyID, "prefix", out.Prefix, "reporter", rep.Reporter, "url", rep.URL, "action", out.Action)
	}
	if r.Alert != nil {
		r.Alert(detect.Alert{ID: newID(), At: at, Rule: RuleLeakReported, KeyID: out.KeyID, KeyPrefix: out.Prefix, Severity: detect.SeverityHigh, Summary: summary})
	}
}

// record puts the report on the audit trail.
func (r *Responder) record(rep Report, out Outcome, why string) {
	if r.Audit == nil {
		return
	}
	res := out.Prefix
	if res == "" {
		res = out.KeyName // an upstream key: the provider it belongs to
	}
	ev := audit.Event{Type: "key.leak_reported", Actor: rep.Reporter, KeyID: out.KeyID, Resource: res,
		Decision: "false_positive", Fields: map[string]string{"url": rep.URL, "source": rep.Source, "type": rep.Type}}
	if out.TruePositive {
		ev.Decision = "true_positive"
		ev.Fields["action"] = out.Action
	}
	if why != "" {
		ev.Reasons = []string{why}
	}
	if err := r.Audit(ev); err != nil && r.Log != nil {
		r.Log.Error("a leak report could not be recorded on the audit trail", "err", err)
	}
}
