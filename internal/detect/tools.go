package detect

import (
	"fmt"
	"time"
)

// maxToolsPerKey bounds the tools remembered per key. A key that has used
// more has no narrow habit to depart from; past the bound, new tools are
// no longer alerted.
const maxToolsPerKey = 256

// toolState is what the new-tool rule keeps of one key.
type toolState struct {
	seen map[string]struct{} // the tools it called, "server/tool"
}

// observeTool notes a tool call of the key and returns a new-tool alert
// when a key that has worked for the rule's learning time (Rate.Forming)
// calls a tool it never called before. A call keygate refused is not an
// alert of this rule (the refusal is on the trail, and repeats would be
// noise), but the tool still counts as seen.
func (st *keyState) observeTool(e *Engine, id string, o *Observation) (pendingAlert, bool) {
	if o.Tool == "" {
		return pendingAlert{}, false
	}
	if st.tools == nil {
		st.tools = &toolState{seen: map[string]struct{}{}}
	}
	ts := st.tools
	if _, ok := ts.seen[o.Tool]; ok || len(ts.seen) >= maxToolsPerKey {
		return pendingAlert{}, false
	}
	ts.seen[o.Tool] = struct{}{}
	// firstSec is the first second the engine ticked the key: when it
	// was first seen, to the second.
	used := o.At.Unix() - st.firstSec
	learned := st.firstSec != 0 && used >= int64(e.cfg.Rate.Forming.Seconds())
	if !learned || o.ToolDenied {
		return pendingAlert{}, false
	}
	return pendingAlert{subject: RuleNewTool + "\x00" + id + "\x00" + o.Tool, a: Alert{
		Rule: RuleNewTool, KeyID: id, Client: o.Client, Severity: SeverityLow,
		Summary: fmt.Sprintf("first call of tool %s by this key, after %ds of use and %d other tools",
			o.Tool, used, len(ts.seen)-1),
		Numbers: map[string]float64{"tools_known": float64(len(ts.seen) - 1), "seconds_of_use": float64(used)},
		Events:  st.ev.list(),
	}}, true
}

// untrustedWindow is how long after reading an open-world tool's result a
// destructive call is suspect: an agent acts on what it just read within
// a turn or two.
const untrustedWindow = 10 * time.Minute

// observeUntrusted follows what a key reads and does with its tools, and
// returns a destructive-after-untrusted alert (high) when it calls a
// destructive tool within untrustedWindow of reading an open-world tool's
// result: text from outside (a web page, an email, an issue) told the
// agent to delete, send or change something, which is how prompt
// injection does its harm. A refused call is neither: it neither read nor
// changed anything.
func (st *keyState) observeUntrusted(id string, o *Observation) (pendingAlert, bool) {
	if o.Tool == "" || o.ToolDenied {
		return pendingAlert{}, false
	}
	now := o.At.Unix()
	var p pendingAlert
	alert := false
	if o.ToolDestructive && st.untrustedTool != "" && now-st.untrustedAt <= int64(untrustedWindow.Seconds()) {
		ago := now - st.untrustedAt
		p = pendingAlert{subject: RuleDestructiveAfterUntrusted + "\x00" + id + "\x00" + o.Tool, a: Alert{
			Rule: RuleDestructiveAfterUntrusted, KeyID: id, Client: o.Client, Severity: SeverityHigh,
			Summary: fmt.Sprintf("call of destructive tool %s %ds after this key read the result of open-world tool %s",
				o.Tool, ago, st.untrustedTool),
			Numbers: map[string]float64{"seconds_since_untrusted": float64(ago)},
			Events:  st.ev.list(),
		}}
		alert = true
	}
	if o.ToolOpenWorld {
		st.untrustedTool, st.untrustedAt = o.Tool, now
	}
	return p, alert
}
