package detect

import (
	"fmt"
	"time"
)

// OTPLockout is a lockout of one-time-password verification after too many wrong codes. The
// shared store decides it, so it is reported once across the nodes, by the node whose attempt
// started it.
type OTPLockout struct {
	// At is when the lockout started; Until when it ends.
	At, Until time.Time
	// Subject names whose codes were tried, such as "key/<id>".
	Subject string
	// KeyID is the key concerned, when the subject is a key.
	KeyID string
	// Client is the address of the attempt that started the lockout.
	Client string
	// ByClient marks a lockout of the client address (too many wrong codes from it, across
	// subjects) rather than of the subject.
	ByClient bool
	// Failures wrong codes were counted within Window, against a limit of Max.
	Failures, Max int
	Window        time.Duration
}

// OTPLockout raises a RuleOTPBruteForce alert (high severity) at once. Like every alert it
// goes through the rate limit, and the rule can be mapped to an action in Config.Actions
// (suspend stops the key). A lockout ends by itself at the time the alert names, so it has no
// recovery notice.
func (e *Engine) OTPLockout(l OTPLockout) {
	now := e.now()
	at := l.At
	if at.IsZero() {
		at = now
	}
	who, subject := "for "+l.Subject, l.Subject
	if l.KeyID != "" {
		who = "for key " + l.KeyID
	}
	what := fmt.Sprintf("%d wrong one-time passwords %s within %v (limit %d), the last from %s; its one-time passwords are refused until %s",
		l.Failures, who, l.Window, l.Max, l.Client, l.Until.UTC().Format(time.RFC3339))
	if l.ByClient {
		subject = "client " + l.Client
		what = fmt.Sprintf("%d wrong one-time passwords from client %s within %v (limit %d), the last %s; one-time passwords from it are refused until %s",
			l.Failures, l.Client, l.Window, l.Max, who, l.Until.UTC().Format(time.RFC3339))
	}
	a := Alert{At: at, Rule: RuleOTPBruteForce, KeyID: l.KeyID, Client: l.Client, Severity: SeverityHigh, Summary: what,
		Numbers: map[string]float64{"failures": float64(l.Failures), "limit": float64(l.Max),
			"window_seconds": l.Window.Seconds(), "lockout_seconds": l.Until.Sub(at).Seconds()}}
	e.deliver(now, []pendingAlert{{a: a, subject: RuleOTPBruteForce + "\x00" + subject}})
}
