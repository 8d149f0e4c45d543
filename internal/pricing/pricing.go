// Package pricing turns token counts into money, so keygate can hold keys
// to spend budgets. Prices are kept in micro-dollars per million tokens and
// costs in micro-dollars, integers throughout, so sums are exact.
//
// keygate ships list prices for widely used models (Defaults); operators
// override or add models in the configuration, since prices change and
// contracts differ. A model without a price cannot be held to a budget:
// keygate refuses such a request rather than let it run unmetered.
package pricing

import (
	"fmt"
	"math"
	"math/bits"
	"sort"
	"strings"
)

// Price is what one million tokens of a model cost, in micro-dollars.
type Price struct {
	Input  int64 // per million input tokens
	Output int64 // per million output tokens
	// LongAbove, when positive, is the prompt length in tokens above
	// which a call is billed LongInput and LongOutput for all its tokens
	// instead, as Google bills its Pro models' long prompts.
	LongAbove             int64
	LongInput, LongOutput int64
}

// WithLongContext is p for prompts up to above tokens, and input and
// output dollars per million tokens for every token of a call whose
// prompt is longer.
func (p Price) WithLongContext(above int64, input, output float64) Price {
	long := USD(input, output)
	p.LongAbove, p.LongInput, p.LongOutput = above, long.Input, long.Output
	return p
}

// USD builds a Price from dollars per million tokens, as providers publish them.
func USD(input, output float64) Price {
	return Price{Input: int64(math.Round(input * 1e6)), Output: int64(math.Round(output * 1e6))}
}

// MaxPrice is the highest price per million tokens a Price may carry: a
// million dollars, far above any model's, and low enough that Cost's
// arithmetic stays exact for every token count keygate reserves.
const MaxPrice = 1_000_000 * 1_000_000

// Cost returns what in input and out output tokens cost, in micro-dollars,
// rounded up so a budget is never undercharged. Negative counts cost
// nothing. A result too large for an int64 saturates at math.MaxInt64
// rather than wrapping around, so an absurd request is charged more than
// any budget holds, never less.
func (p Price) Cost(in, out int64) int64 {
	pin, pout := p.Input, p.Output
	if p.LongAbove > 0 && in > p.LongAbove {
		pin, pout = p.LongInput, p.LongOutput
	}
	a, ok1 := mulTokens(in, pin)
	b, ok2 := mulTokens(out, pout)
	sum, carry := bits.Add64(a, b, 0)
	if !ok1 || !ok2 || carry != 0 {
		return math.MaxInt64
	}
	// Round up to whole micro-dollars without overflowing the sum.
	q := sum / 1_000_000
	if sum%1_000_000 != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

// mulTokens multiplies a token count by a price, reporting false when the
// product does not fit in 64 bits. A negative count or price counts as 0.
func mulTokens(tokens, price int64) (uint64, bool) {
	if tokens <= 0 || price <= 0 {
		return 0, true
	}
	hi, lo := bits.Mul64(uint64(tokens), uint64(price))
	return lo, hi == 0
}

// Defaults are list prices in US dollars per million tokens for widely used
// models, as their providers published them. They are a starting point:
// check them against your contract and override them under prices: in the
// configuration.
//
// Every default is an exact model name. A dated snapshot of a listed model
// (gpt-4o-mini-2024-07-18, claude-sonnet-4-5-20250929) costs what the model
// does unless the snapshot has its own entry (gpt-4o-2024-05-13 does: it
// lists at twice gpt-4o's price). Nothing else is inferred from a name: a
// longer name is often a different, dearer model (gpt-5-pro is not gpt-5,
// o3-pro is not o3), so a model with no entry is unpriced, and a key with
// a budget is refused it until the operator prices it.
//
// Gemini's prices are Google's paid tier for text, image and video input
// (2.5 Flash lists audio input dearer, at $1.00); its Pro models bill every
// token of a call with a prompt over 200,000 tokens at a higher price,
// which their entries carry (WithLongContext).
func Defaults() map[string]Price {
	return map[string]Price{
		"gpt-4o":                    USD(2.50, 10.00),
		"gpt-4o-2024-05-13":         USD(5.00, 15.00),
		"gpt-4o-mini":               USD(0.15, 0.60),
		"gpt-4.1":                   USD(2.00, 8.00),
		"gpt-4.1-mini":              USD(0.40, 1.60),
		"gpt-4.1-nano":              USD(0.10, 0.40),
		"gpt-5":                     USD(1.25, 10.00),
		"gpt-5-mini":                USD(0.25, 2.00),
		"gpt-5-nano":                USD(0.05, 0.40),
		"gpt-5-pro":                 USD(15.00, 120.00),
		"o3":                        USD(2.00, 8.00),
		"o3-pro":                    USD(20.00, 80.00),
		"o3-mini":                   USD(1.10, 4.40),
		"o4-mini":                   USD(1.10, 4.40),
		"text-embedding-3-small":    USD(0.02, 0),
		"text-embedding-3-large":    USD(0.13, 0),
		"claude-opus-4-5":           USD(5.00, 25.00),
		"claude-opus-4-1":           USD(15.00, 75.00),
		"claude-opus-4":             USD(15.00, 75.00),
		"claude-opus-4-0":           USD(15.00, 75.00),
		"claude-sonnet-4-5":         USD(3.00, 15.00),
		"claude-sonnet-4":           USD(3.00, 15.00),
		"claude-sonnet-4-0":         USD(3.00, 15.00),
		"claude-3-7-sonnet":         USD(3.00, 15.00),
		"claude-3-7-sonnet-latest":  USD(3.00, 15.00),
		"claude-haiku-4-5":          USD(1.00, 5.00),
		"claude-3-5-haiku":          USD(0.80, 4.00),
		"claude-3-5-haiku-latest":   USD(0.80, 4.00),
		"gemini-3-pro-preview":      USD(2.00, 12.00).WithLongContext(200_000, 4.00, 18.00),
		"gemini-3-flash-preview":    USD(0.50, 3.00),
		"gemini-2.5-pro":            USD(1.25, 10.00).WithLongContext(200_000, 2.50, 15.00),
		"gemini-2.5-flash":          USD(0.30, 2.50),
		"gemini-2.5-flash-lite":     USD(0.10, 0.40),
		"gemini-2.0-flash":          USD(0.10, 0.40),
		"gemini-2.0-flash-lite":     USD(0.075, 0.30),
		"gemini-2.0-flash-001":      USD(0.10, 0.40),
		"gemini-2.0-flash-lite-001": USD(0.075, 0.30),
		"gemini-embedding-001":      USD(0.15, 0),
	}
}

// Table looks up model prices. A model is priced by, in order: an exact
// entry (the configuration's replacing the default of the same name); a
// dated snapshot of an exact entry (gpt-4o-mini-2024-07-18 and
// claude-sonnet-4-5-20250929 by gpt-4o-mini and claude-sonnet-4-5); a
// pattern ending in * that the configuration declares, the longest first.
// Anything else is unpriced.
type Table struct {
	exact    map[string]Price
	prefixes []prefixPrice // longest first
}

type prefixPrice struct {
	prefix string
	price  Price
}

// NewTable builds a Table from Defaults with overrides applied on top (an
// override replaces the default of the same name). Overrides may also
// declare patterns: a name ending in * prices every model it prefixes.
func NewTable(overrides map[string]Price) (*Table, error) {
	all := Defaults()
	for name, p := range overrides {
		if name == "" || name == "*" || strings.Count(name, "*") > 1 || (strings.Contains(name, "*") && !strings.HasSuffix(name, "*")) {
			return nil, fmt.Errorf("pricing: model %q: use an exact model name, or a prefix ending in * (such as my-model-*)", name)
		}
		if p.Input < 0 || p.Output < 0 {
			return nil, fmt.Errorf("pricing: model %q: prices must not be negative", name)
		}
		if p.Input > MaxPrice || p.Output > MaxPrice {
			return nil, fmt.Errorf("pricing: model %q: a price above $1,000,000 per million tokens is surely a mistake", name)
		}
		all[name] = p
	}
	t := &Table{exact: map[string]Price{}}
	for name, p := range all {
		if pre, ok := strings.CutSuffix(name, "*"); ok {
			t.prefixes = append(t.prefixes, prefixPrice{pre, p})
		} else {
			t.exact[name] = p
		}
	}
	sort.Slice(t.prefixes, func(i, j int) bool {
		if len(t.prefixes[i].prefix) != len(t.prefixes[j].prefix) {
			return len(t.prefixes[i].prefix) > len(t.prefixes[j].prefix)
		}
		return t.prefixes[i].prefix < t.prefixes[j].prefix
	})
	return t, nil
}

// Lookup returns the price of a model, as the upstream names it, and
// whether it has one.
func (t *Table) Lookup(model string) (Price, bool) {
	if p, ok := t.exact[model]; ok {
		return p, true
	}
	if base, ok := snapshotOf(model); ok {
		if p, ok := t.exact[base]; ok {
			return p, true
		}
	}
	for _, pp := range t.prefixes {
		if strings.HasPrefix(model, pp.prefix) {
			return pp.price, true
		}
	}
	return Price{}, false
}

// snapshotOf returns the model a dated snapshot name pins: the name less a
// final -YYYY-MM-DD (OpenAI), -YYYYMMDD (Anthropic) or @YYYYMMDD (Vertex).
func snapshotOf(model string) (string, bool) {
	if n := len(model); n > 11 && model[n-11] == '-' && isDate(model[n-10:n-6]+model[n-5:n-3]+model[n-2:]) && model[n-6] == '-' && model[n-3] == '-' {
		return model[:n-11], true
	}
	if n := len(model); n > 9 && (model[n-9] == '-' || model[n-9] == '@') && isDate(model[n-8:]) {
		return model[:n-9], true
	}
	return "", false
}

// isDate reports whether s is eight digits that read as a plausible
// YYYYMMDD date.
func isDate(s string) bool {
	if len(s) != 8 {
		return false
	}
	for i := 0; i < 8; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	month := (s[4]-'0')*10 + s[5] - '0'
	day := (s[6]-'0')*10 + s[7] - '0'
	return s[0] == '2' && month >= 1 && month <= 12 && day >= 1 && day <= 31
}
