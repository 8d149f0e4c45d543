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
	"github.com/keygate/keygate/internal/keylife"
	"github.com/keygate/keygate/internal/metrics"
	"github.com/keygate/keygate/internal/secret"
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

// alertKeys is what an alert's action changes keys through; *keylife.Service is one.
type alertKeys interface {
	Suspend(ctx context.Context, id string, by keylife.Actor) (keylife.Change, error)
	RequireStepUp(ctx context.Context, id string, until time.Time, by keylife.Actor) (keylife.Change, error)
}

// newDetection builds the detectors and the notifiers the configuration
// names. Every alert is logged, counted and put on the audit trail; an
// alert whose rule maps to suspend (or step-up) changes its key through
// keys, which tells every node and records it with the rule as the actor.
func newDetection(ctx context.Context, p *plan, v *vault.Vault, trail *auditTrail, met *metrics.Metrics,
	keys alertKeys, log *slog.Logger) (*detection, error) {
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
			by := keylife.AlertActor(a.Rule, a.Summary, a.ID)
			var c keylife.Change
			var err error
			what := "suspended"
			if action == detect.ActionSuspend {
				c, err = keys.Suspend(ctx, a.KeyID, by)
			} else {
				what = "required to step up with a second factor"
				c, err = keys.RequireStepUp(ctx, a.KeyID, time.Now().Add(stepUpFor), by)
			}
			if err != nil {
				log.Error("an alert asked to act on a key, and it could not", "action", action, "key_id", a.KeyID, "rule", a.Rule, "err", err)
				return
			}
			if c.Changed {
				log.Warn("key "+what+" by an alert", "key_id", a.KeyID, "rule", a.Rule)
			}
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
