package detect

// Raise delivers an alert that a part of keygate other than the detectors
// found (a referenced secret's source that cannot be read, for one), through
// the same de-duplication, rate limit, actions and notifiers as the
// detectors' own. subject names what the alert is about, so repeats of it
// are told apart from alerts about other things.
func (e *Engine) Raise(a Alert, subject string) {
	e.deliver(e.now(), []pendingAlert{{a: a, subject: a.Rule + "\x00" + subject}})
}
