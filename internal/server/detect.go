package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/metrics"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

// detection is the anomaly engine with its alert delivery.
type detection struct {
	engine *detect.Engine
	disp   *detect.Dispatcher // nil without a notifier
	// raise delivers an alert: metrics, log, audit trail and notifiers,
	// whoever raised it (the detectors, a leak report).
	raise func(detect.Alert)
	// acting counts the alert actions (suspend, step-up) under way: they
	// write the store and the audit trail, so shutdown waits for them
	// before closing either.
	acting sync.WaitGroup
	log    *slog.Logger
}

// newDetection builds the detectors and the notifiers the configuration
// names. Every alert is logged, counted and put on the audit trail; an
// alert whose rule maps to suspend suspends its key on every node.
func newDetection(ctx context.Context, p *plan, st *store.Store, v *vault.Vault, trail *auditTrail, met *metrics.Metrics,
	forgetKey func(string), log *slog.Logger) (*detection, error) {
	cfg := p.cfg
	d := &detection{log: log}
	notifiers := map[string]detect.Notifier{}
	if cfg.Alerts.Webhook != "" {
		key, err := v.Ensure(ctx, "system/alert-webhook-key", 32)
		if err != nil {
			return nil, fmt.Errorf("alert webhook signing key: %w", err)
		}
		notifiers["webhook"] = &detect.WebhookNotifier{URL: secret.New(cfg.Alerts.Webhook), Secret: secret.New(key.Reveal()), Client: cfg.EgressPolicy().Client(30 * time.Second)}
	}
	if cfg.Alerts.Slack != "" {
		notifiers["slack"] = &detect.SlackNotifier{URL: secret.New(cfg.Alerts.Slack), Client: cfg.EgressPolicy().Client(30 * time.Second)}
	}
	if p.alertsSyslog != nil {
		w, err := p.syslogs.writer(ctx, p.alertsSyslog.String())
		if err != nil {
			return nil, fmt.Errorf("config: alerts.syslog: %w", err)
		}
		notifiers["syslog"] = &detect.SyslogNotifier{Writer: w}
	}
	if len(notifiers) > 0 {
		disp, err := detect.NewDispatcher(notifiers, detect.DispatcherOptions{OnError: func(name string, a detect.Alert, err error) {
			log.Error("an alert could not be delivered", "notifier", name, "rule", a.Rule, "err", err)
		}})
		if err != nil {
			return nil, err
		}
		d.disp = disp
	}
	dc := p.detect
	stepUpFor := cfg.Alerts.StepUpFor
	if stepUpFor <= 0 {
		stepUpFor = 24 * time.Hour
	}
	dc.Act = func(a detect.Alert, action string) {
		if a.KeyID == "" || (action != detect.ActionSuspend && action != detect.ActionStepUp) {
			return
		}
		d.acting.Go(func() {
			ctx := context.Background()
			now := time.Now().UTC()
			var err error
			evType, what := "key.suspended", "suspended"
			if action == detect.ActionSuspend {
				_, err = st.SetKeySuspended(ctx, a.KeyID, &now)
			} else {
				until := now.Add(stepUpFor)
				evType, what = "key.step_up_required", "required to step up with a second factor"
				_, err = st.SetKeyStepUp(ctx, a.KeyID, &until)
			}
			if err != nil {
				log.Error("an alert asked to act on a key, and it could not", "action", action, "key_id", a.KeyID, "rule", a.Rule, "err", err)
				return
			}
			// Every node re-reads the key on its next request.
			_, _ = st.AddRevocation(ctx, store.Revocation{Kind: "key", Subject: a.KeyID, At: now, Until: now.Add(24 * time.Hour)})
			forgetKey(a.KeyID)
			_ = trail.w.Record(audit.Event{Type: evType, Actor: "alert", KeyID: a.KeyID, Decision: "deny",
				Reasons: []string{a.Rule + ": " + a.Summary}, Fields: map[string]string{"alert_id": a.ID}})
			log.Warn("key "+what+" by an alert", "key_id", a.KeyID, "rule", a.Rule)
		})
	}
	d.raise = func(a detect.Alert) {
		met.Alert(a.Rule)
		log.Warn("alert", "rule", a.Rule, "key_id", a.KeyID, "client", a.Client, "severity", a.Severity, "summary", a.Summary, "recovered", a.Recovered)
		ev := audit.Event{Type: "alert", KeyID: a.KeyID, Client: a.Client, Resource: a.Rule, Decision: a.Severity,
			Reasons: []string{a.Summary}, Fields: map[string]string{"alert_id": a.ID}}
		if a.Recovered {
			ev.Decision = "recovered"
		}
		if len(a.Events) > 0 {
			seqs := make([]string, len(a.Events))
			for i, s := range a.Events {
				seqs[i] = fmt.Sprint(s)
			}
			ev.Fields["events"] = strings.Join(seqs, ",")
		}
		_ = trail.w.Record(ev)
		if d.disp != nil {
			d.disp.Emit(a)
		}
	}
	engine, err := detect.NewEngine(dc, time.Now, d.raise)
	if err != nil {
		return nil, fmt.Errorf("config: alerts: %w", err)
	}
	d.engine = engine
	return d, nil
}

// close waits for the alert actions under way, then delivers the alerts
// still queued (for up to 5 seconds).
func (d *detection) close() {
	if d == nil {
		return
	}
	d.acting.Wait()
	if d.disp != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.disp.Close(ctx); err != nil {
			d.log.Error("some alerts were not delivered before shutdown", "err", err)
		}
	}
}
