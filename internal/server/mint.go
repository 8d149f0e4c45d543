package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/leak"
	"github.com/keygate/keygate/internal/leakreport"
	"github.com/keygate/keygate/internal/mint"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

// How a node works on minted providers' keys (keygate provider mint).
const (
	// mintLease bounds one node's work on one provider: another node takes
	// the provider over only once it has run out (the holder died).
	mintLease = 2 * time.Minute
	// mintWork bounds the upstream and vault calls of that work, well
	// inside the lease.
	mintWork = 90 * time.Second
	// mintRecheck is the longest a provider goes unchecked, so a schedule
	// changed with keygate provider mint-schedule applies within it.
	mintRecheck = 5 * time.Minute
	// mintPending bounds the leaked providers waiting for a rotation.
	mintPending = 64
	// mintLeakOverlap caps how long a key found leaked keeps working after
	// its rotation: long enough for requests in flight and for the other
	// nodes to move to the new key (provider_refresh), short enough to
	// limit what the leak is worth.
	mintLeakOverlap = 5 * time.Minute
)

// Alert rules raised about minted keys.
const (
	ruleMintedKeyLeaked       = "minted_key_leaked"
	ruleMintedRotationFailed  = "minted_key_rotation_failed"
	ruleProviderKeyLeaked     = "provider_key_leaked"
	ruleProviderKeyDisabled   = "provider_key_disabled"
	auditProviderKeyDisabled  = "provider.key_disabled"
	mintActor                 = "keygate"
	auditMintedKeyRotated     = "provider.minted_key_rotated"
	auditMintedKeyDeleted     = "provider.minted_key_deleted"
	mintReasonSchedule        = "schedule"
	mintReasonLeak            = "leak"
	mintReasonLeakReport      = "leak_report"
	mintReasonRequestOrAnswer = "found_in_traffic"
)

// minting rotates the keys of providers keygate mints, inside keygate
// serve: on their schedule (Config.RotateEvery), deleting replaced keys
// once their overlap has passed, and at once when a provider's key is
// found leaked (in a request or answer by the outbound check, or in a
// leak report). An Anthropic key, which keygate cannot mint, is disabled
// at Anthropic instead when found leaked, if keygate holds the
// organization's admin key (keygate provider admin-key). Each piece of
// work on a provider is done by one node, the one that holds its lease in
// the shared database (store.ClaimMint).
type minting struct {
	st     *store.Store
	v      *vault.Vault
	http   *http.Client
	reload func(context.Context) // this node's provider table
	audit  func(audit.Event) error
	alert  func(a detect.Alert, subject string) // raised as the detectors' are, repeats about one subject folded
	log    *slog.Logger
	now    func() time.Time

	wakeCh chan struct{}
	mu     sync.Mutex
	leaked map[string]leakSeen // vault record id -> when and how it was found
}

// leakSeen is a vault record found leaked, waiting for its rotation.
type leakSeen struct {
	at     time.Time
	reason string // mintReasonRequestOrAnswer or mintReasonLeakReport
	by     string // who reported it, for a report
}

func newMinting(st *store.Store, v *vault.Vault, hc *http.Client, log *slog.Logger) *minting {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &minting{st: st, v: v, http: hc, log: log, now: time.Now, wakeCh: make(chan struct{}, 1), leaked: map[string]leakSeen{},
		reload: func(context.Context) {}, audit: func(audit.Event) error { return nil }, alert: func(detect.Alert, string) {}}
}

// wake is the task's wake channel: a leak runs it at once.
func (m *minting) wake() <-chan struct{} { return m.wakeCh }

// found notes vault records found leaked; the task rotates the minted
// providers among them. It never blocks: it is called on the request path.
func (m *minting) found(records []string, s leakSeen) {
	m.mu.Lock()
	added := false
	for _, id := range records {
		if !strings.HasPrefix(id, "provider/") {
			continue
		}
		if _, ok := m.leaked[id]; !ok && len(m.leaked) < mintPending {
			m.leaked[id] = s
			added = true
		}
	}
	m.mu.Unlock()
	if added {
		select {
		case m.wakeCh <- struct{}{}:
		default:
		}
	}
}

// run is the task: leaked minted keys first, then scheduled work.
func (m *minting) run(ctx context.Context) {
	m.rotateLeaked(ctx)
	m.runScheduled(ctx)
}

// mintedProviders lists the providers whose keys keygate mints.
func (m *minting) mintedProviders(ctx context.Context) ([]string, error) {
	metas, err := m.st.ListSecretMeta(ctx, false)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, sm := range metas {
		if p, ok := mint.ProviderOfConfig(sm.Name); ok {
			names = append(names, p)
		}
	}
	return names, nil
}

func (m *minting) runScheduled(ctx context.Context) {
	names, err := m.mintedProviders(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("minted keys: could not list the minted providers; will retry", "err", err)
		}
		return
	}
	for _, name := range names {
		m.withLease(ctx, name, true, func(ctx context.Context, p mintProvider) {
			r, err := p.rotator()
			if errors.Is(err, mint.ErrCannotMint) {
				return // nothing is scheduled for a key keygate cannot mint
			}
			if err != nil {
				m.failed(name, mintReasonSchedule, err)
				return
			}
			done, err := r.RunDue(ctx)
			for _, id := range done.Deleted {
				m.record(auditMintedKeyDeleted, name, map[string]string{"account": id, "reason": "overlap_ended"})
			}
			if done.Rotated {
				m.record(auditMintedKeyRotated, name, map[string]string{"reason": mintReasonSchedule})
				m.log.Info("minted keys: provider key rotated on schedule", "provider", name)
			}
			if err != nil {
				m.failed(name, mintReasonSchedule, err)
			}
		})
	}
}

// rotateLeaked rotates each minted provider whose key was found leaked,
// unless another node did since it was found; a provider whose lease is
// held elsewhere stays pending for the next run.
func (m *minting) rotateLeaked(ctx context.Context) {
	m.mu.Lock()
	pending := make(map[string]leakSeen, len(m.leaked))
	for id, s := range m.leaked {
		pending[id] = s
	}
	m.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	providers, err := m.st.ListProviders(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("minted keys: could not list providers to rotate a leaked key; will retry", "err", err)
		}
		return
	}
	minted, err := m.mintedProviders(ctx)
	if err != nil {
		return
	}
	for id, seen := range pending {
		i := slices.IndexFunc(providers, func(p store.Provider) bool { return p.SecretID == id })
		if i < 0 || !slices.Contains(minted, providers[i].Name) {
			// Not a minted key: the outbound check's alert stands, and a
			// person rotates it (keygate provider rotate).
			m.forget(id)
			continue
		}
		name, record := providers[i].Name, providers[i].SecretID
		handled := m.withLease(ctx, name, false, func(ctx context.Context, p mintProvider) {
			if !p.cfg.Mints() {
				m.disableLeaked(ctx, p, record, seen)
				return
			}
			r, err := p.rotator()
			if err != nil {
				m.failed(name, mintReasonLeak, err)
				return
			}
			r.Overlap = min(r.Overlap, mintLeakOverlap)
			rotated, err := r.RotateUnlessNewer(ctx, seen.at)
			if err != nil {
				m.failed(name, mintReasonLeak, err)
				return
			}
			if !rotated {
				return // another node rotated it since it was found
			}
			f := map[string]string{"reason": mintReasonLeak, "found": seen.reason}
			if seen.by != "" {
				f["reported_by"] = seen.by
			}
			m.record(auditMintedKeyRotated, name, f)
			where := "in a request or an answer through the gateway"
			if seen.reason == mintReasonLeakReport {
				where = "in a leak report by " + seen.by
			}
			m.alert(detect.Alert{Rule: ruleMintedKeyLeaked, Severity: detect.SeverityHigh,
				Summary: fmt.Sprintf("provider %s's key was found %s at %s; keygate minted a new key and made it current, and deletes the leaked one upstream after the overlap (%s)",
					name, where, seen.at.UTC().Format(time.RFC3339), r.Overlap)}, name)
			m.log.Warn("minted keys: provider key found leaked and rotated", "provider", name, "found", seen.reason)
		})
		if handled {
			m.forget(id)
		}
	}
}

// disableLeaked disables a leaked Anthropic key through Anthropic's Admin
// API, which cannot create a replacement: the provider is refused upstream
// until a person gives keygate a new key, and the alert says so.
func (m *minting) disableLeaked(ctx context.Context, p mintProvider, record string, seen leakSeen) {
	value, _, err := m.v.Get(ctx, record)
	if err != nil {
		m.failed(p.name, mintReasonLeak, fmt.Errorf("open the provider's key: %w", err))
		return
	}
	id, keyName, err := p.cfg.Anthropic(p.key, m.http).Disable(ctx, value)
	if errors.Is(err, mint.ErrNoKeyFits) {
		m.log.Info("minted keys: a leaked Anthropic key is disabled already", "provider", p.name)
		return
	}
	if err != nil {
		m.failed(p.name, mintReasonLeak, err)
		return
	}
	f := map[string]string{"reason": mintReasonLeak, "found": seen.reason, "anthropic_key_id": id}
	if seen.by != "" {
		f["reported_by"] = seen.by
	}
	m.record(auditProviderKeyDisabled, p.name, f)
	m.alert(detect.Alert{Rule: ruleProviderKeyDisabled, Severity: detect.SeverityHigh,
		Summary: fmt.Sprintf("provider %s's key was found leaked (%s) at %s; keygate disabled it at Anthropic (%s, %q). Anthropic's Admin API creates no keys: make a new key in the Claude Console and give it to keygate with keygate provider rotate %s; until then the provider's calls fail",
			p.name, seen.reason, seen.at.UTC().Format(time.RFC3339), id, keyName, p.name)}, p.name)
	m.log.Warn("minted keys: a leaked Anthropic key was disabled; the provider needs a new key", "provider", p.name, "anthropic_key_id", id)
}

func (m *minting) forget(id string) {
	m.mu.Lock()
	delete(m.leaked, id)
	m.mu.Unlock()
}

// mintProvider is what keygate holds to act on one provider's keys.
type mintProvider struct {
	name string
	cfg  mint.Config
	key  secret.String // the admin credential
	adm  mintAdmin
	http *http.Client
}

// rotator returns the provider's rotator, or mint.ErrCannotMint.
func (p mintProvider) rotator() (*mint.Rotator, error) {
	minter, err := p.cfg.Minter(p.key, p.http)
	if err != nil {
		return nil, err
	}
	return p.cfg.Rotator(p.name, minter, p.adm), nil
}

// withLease runs work on provider name while this node holds its lease
// (with dueOnly, only when its scheduled work is due), then releases it
// with the next time scheduled work is due. It reports whether the work
// ran or cannot run at all (no readable configuration).
func (m *minting) withLease(ctx context.Context, name string, dueOnly bool, work func(context.Context, mintProvider)) bool {
	now := m.now()
	until := now.Add(mintLease)
	won, err := m.st.ClaimMint(ctx, name, now, until, dueOnly)
	if err != nil || !won {
		if err != nil && ctx.Err() == nil {
			m.log.Warn("minted keys: could not claim a provider's work; will retry", "provider", name, "err", err)
		}
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, mintWork)
	defer cancel()
	next := now.Add(mintRecheck)
	defer func() {
		if err := m.st.ReleaseMint(context.WithoutCancel(ctx), name, until, next); err != nil {
			m.log.Warn("minted keys: could not release a provider's lease; another node takes it over when it runs out", "provider", name, "err", err)
		}
	}()
	p, err := m.provider(wctx, name)
	if err != nil {
		m.failed(name, "configuration", err)
		return true
	}
	work(wctx, p)
	if !p.cfg.Mints() {
		return true
	}
	if r, err := p.rotator(); err == nil {
		if due, err := r.NextDue(wctx); err == nil && !due.IsZero() && due.Before(next) {
			next = due
		}
	}
	return true
}

// provider reads what keygate holds for provider name: its configuration
// and admin credential in the vault.
func (m *minting) provider(ctx context.Context, name string) (mintProvider, error) {
	adm := mintAdmin{st: m.st, v: m.v, reload: m.reload, now: m.now}
	raw, _, err := adm.SecretValue(ctx, mint.ConfigName(name), 0)
	if err != nil {
		return mintProvider{}, err
	}
	cfg, err := mint.ParseConfig(raw.Reveal())
	if err != nil {
		return mintProvider{}, fmt.Errorf("secret %s: %w", mint.ConfigName(name), err)
	}
	key, _, err := adm.SecretValue(ctx, mint.AdminKeyName(name), 0)
	if err != nil {
		return mintProvider{}, err
	}
	return mintProvider{name: name, cfg: cfg, key: key, adm: adm, http: m.http}, nil
}

// failed tells the operator that work on a minted key failed: logged, and
// raised as an alert, since a key found leaked may still be current.
func (m *minting) failed(name, reason string, err error) {
	m.log.Error("minted keys: work on a provider's key failed; will retry", "provider", name, "reason", reason, "err", err)
	sev := detect.SeverityMedium
	if reason == mintReasonLeak {
		sev = detect.SeverityHigh
	}
	m.alert(detect.Alert{Rule: ruleMintedRotationFailed, Severity: sev,
		Summary: fmt.Sprintf("provider %s: keygate could not rotate or delete its minted key (%s): %v; it retries, or run keygate provider mint-rotate %s", name, reason, err, name)}, name)
}

// record puts keygate's own work on a minted key on the audit trail.
func (m *minting) record(typ, name string, fields map[string]string) {
	if err := m.audit(audit.Event{Type: typ, Actor: mintActor, Resource: "provider:" + name, Decision: "allow", Fields: fields}); err != nil {
		m.log.Error("minted keys: work on a provider's key could not be recorded on the audit trail", "provider", name, "err", err)
	}
}

// mintAdmin is mint.Admin for keygate's own rotations: the same steps as
// the admin API's routes (the vault, the provider table), taken directly
// by the node that holds the provider's lease, and put on the audit trail
// by minting.
type mintAdmin struct {
	st     *store.Store
	v      *vault.Vault
	reload func(context.Context)
	now    func() time.Time
}

// CreateProvider is not part of a rotation: providers are minted through
// the admin API (keygate provider mint).
func (a mintAdmin) CreateProvider(context.Context, adminapi.CreateProviderRequest) (adminapi.Provider, error) {
	return adminapi.Provider{}, errors.New("minted keys: providers are added with keygate provider mint, not by keygate serve")
}

// RotateProvider makes key the provider's current key; the previous one
// is destroyed after grace, as the admin API's rotate route does.
func (a mintAdmin) RotateProvider(ctx context.Context, name string, key secret.String, grace string) (adminapi.ProviderRotation, error) {
	g, err := time.ParseDuration(grace)
	if err != nil {
		return adminapi.ProviderRotation{}, fmt.Errorf("grace: %w", err)
	}
	p, err := a.st.GetProvider(ctx, name)
	if err != nil {
		return adminapi.ProviderRotation{}, err
	}
	ver, err := a.v.Put(ctx, p.SecretID, key)
	if err != nil {
		return adminapi.ProviderRotation{}, fmt.Errorf("store provider %s's new key: %w", name, err)
	}
	destroyAt := a.now().UTC().Add(g)
	if _, err := a.st.ScheduleDestroy(ctx, p.SecretID, ver, destroyAt); err != nil {
		return adminapi.ProviderRotation{}, fmt.Errorf("schedule the destruction of provider %s's previous key: %w", name, err)
	}
	a.reload(ctx)
	return adminapi.ProviderRotation{Version: ver, PreviousVersion: ver - 1, PreviousDestroyAt: destroyAt}, nil
}

// PutSecret stores a new version of an existing secret (the minting state).
func (a mintAdmin) PutSecret(ctx context.Context, name string, value secret.String) (adminapi.Secret, error) {
	meta, err := a.st.GetSecretMeta(ctx, name)
	if err != nil {
		return adminapi.Secret{}, fmt.Errorf("secret %s: %w", name, err)
	}
	if meta.DeletedAt != nil {
		return adminapi.Secret{}, fmt.Errorf("secret %s was deleted; add the provider again with keygate provider mint", name)
	}
	ver, err := a.v.Put(ctx, meta.RecordID, value)
	if err != nil {
		return adminapi.Secret{}, fmt.Errorf("store secret %s: %w", name, err)
	}
	if err := a.st.TouchSecretMeta(ctx, name, a.now().UTC()); err != nil {
		return adminapi.Secret{}, fmt.Errorf("secret %s: %w", name, err)
	}
	return adminapi.Secret{Name: name, CurrentVersion: ver}, nil
}

// SecretValue opens the current version of secret name (version 0 only).
func (a mintAdmin) SecretValue(ctx context.Context, name string, version int) (secret.String, int, error) {
	if version != 0 {
		return secret.String{}, 0, errors.New("minted keys: only a secret's current version is read")
	}
	meta, err := a.st.GetSecretMeta(ctx, name)
	if err != nil {
		return secret.String{}, 0, fmt.Errorf("secret %s: %w", name, err)
	}
	if meta.DeletedAt != nil {
		return secret.String{}, 0, fmt.Errorf("secret %s was deleted", name)
	}
	v, ver, err := a.v.Get(ctx, meta.RecordID)
	if err != nil {
		return secret.String{}, 0, fmt.Errorf("open secret %s: %w", name, err)
	}
	return v, ver, nil
}

// reported answers a leak report (GitHub's, or a person's through the
// admin API) whose token is not a keygate credential: when it is a
// provider's key held in the vault, a minted one is rotated at once, and
// any other is raised as an alert for a person to rotate. matcher is the
// outbound check's, which knows the vault's current values.
func (m *minting) reported(ctx context.Context, matcher func() *leak.Matcher, token secret.String, rep leakreport.Report) (target, action string, ok bool) {
	lm := matcher()
	if lm == nil {
		return "", "", false
	}
	var records []string
	for _, h := range lm.Check([]byte(token.Reveal())) {
		if h.Kind == leak.KindVault && h.Name != "" {
			records = append(records, h.Name)
		}
	}
	if len(records) == 0 {
		return "", "", false
	}
	providers, err := m.st.ListProviders(ctx)
	if err != nil {
		m.log.Error("minted keys: a leak report names a vault value, but the providers could not be listed", "err", err)
		return "", "", false
	}
	i := slices.IndexFunc(providers, func(p store.Provider) bool { return slices.Contains(records, p.SecretID) })
	if i < 0 {
		return "", "", false
	}
	name := providers[i].Name
	minted, err := m.mintedProviders(ctx)
	if err == nil && slices.Contains(minted, name) {
		m.found([]string{providers[i].SecretID}, leakSeen{at: m.now(), reason: mintReasonLeakReport, by: rep.Reporter})
		action = "rotating"
		if p, err := m.provider(ctx, name); err == nil && !p.cfg.Mints() {
			action = "disabling"
		}
		return "provider:" + name, action, true
	}
	m.alert(detect.Alert{Rule: ruleProviderKeyLeaked, Severity: detect.SeverityHigh,
		Summary: fmt.Sprintf("provider %s's key was reported leaked by %s; keygate does not mint it, so rotate it at the provider and then with keygate provider rotate %s", name, rep.Reporter, name)}, name)
	return "provider:" + name, "alerted", true
}

// leakWatch is the gateway's audit recorder with one more reader: a
// request's event names the vault records the outbound check found in its
// body or answer (leak_values, answer_leak_values,
// answer_text_leak_values); minting rotates the minted providers among
// them. It adds a few map lookups to each event and never blocks.
type leakWatch struct {
	gateway.AuditRecorder
	m *minting
}

// leakFields are the request event's fields that name vault records found.
var leakFields = [...]string{"leak_values", "answer_leak_values", "answer_text_leak_values"}

// Record hands the leaked records to minting and records ev.
func (w leakWatch) Record(ev audit.Event) error {
	if ev.Fields != nil {
		for _, f := range leakFields {
			if v := ev.Fields[f]; v != "" {
				w.m.found(strings.Split(v, ","), leakSeen{at: ev.Time, reason: mintReasonRequestOrAnswer})
			}
		}
	}
	return w.AuditRecorder.Record(ev)
}
