package leak

// Action is what the gateway does with a body holding a hit.
type Action string

// Actions, from the mildest.
const (
	ActionAlert  Action = "alert"  // forward unchanged; record the hit and raise an alert
	ActionRedact Action = "redact" // replace the hit by [REDACTED:rule] before it goes on
	ActionBlock  Action = "block"  // refuse the request (400 in the caller's dialect, naming the rule)
)

// DefaultAction is the action for a hit of kind k when no policy says
// otherwise: block vault values and keygate credentials, alert on other
// credential formats.
func DefaultAction(k Kind) Action {
	if k == KindVault || k == KindKeygate {
		return ActionBlock
	}
	return ActionAlert
}

// Strictest returns the strictest of the actions policy gives hits, and
// ActionAlert for none. policy maps a hit to its action; nil means
// DefaultAction of its kind.
func Strictest(hits []Hit, policy func(Hit) Action) Action {
	rank := map[Action]int{ActionAlert: 0, ActionRedact: 1, ActionBlock: 2}
	out := ActionAlert
	for _, h := range hits {
		a := DefaultAction(h.Kind)
		if policy != nil {
			a = policy(h)
		}
		if rank[a] > rank[out] {
			out = a
		}
	}
	return out
}
