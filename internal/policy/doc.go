// Package policy makes keygate's per-request authorization decisions that need
// no counters: which methods and paths a key may call, from which addresses,
// at which times and against which deployments (its scopes), and whether a use
// looks risky given where and when the key was used before (the zero-trust
// risk rules).
//
// Every decision is a pure function of the rules, the facts of the request,
// the key's learned history and the current time, all passed in by the
// caller. The package does no I/O, reads no clock and keeps no state, so the
// same inputs always give the same answer on every gateway node.
//
// Parsers (ParsePathRule, ParseCIDRs, ParseWindows, ParseAction) run when an
// administrator sets a policy, and their errors name the bad input and show a
// correct example. Matching functions treat an empty rule set as "no
// restriction": a key without path rules may call any path, a key without an
// IP allowlist may connect from anywhere.
package policy
