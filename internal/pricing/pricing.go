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
	"sort"
	"strings"
)

// Price is what one million tokens of a model cost, in micro-dollars.
type Price struct {
	Input  int64 // per million input tokens
	Output int64 // per million output tokens
}

// USD builds a Price from dollars per million tokens, as providers publish them.
func USD(input, output float64) Price {
	return Price{Input: int64(math.Round(input * 1e6)), Output: int64(math.Round(output * 1e6))}
}

// Cost returns what in input and out output tokens cost, in micro-dollars,
// rounded up so a budget is never undercharged.
func (p Price) Cost(in, out int64) int64 {
	if in < 0 {
		in = 0
	}
	if out < 0 {
		out = 0
	}
	num := in*p.Input + out*p.Output
	return (num + 999_999) / 1_000_000
}

// Defaults are list prices in US dollars per million tokens for widely used
// models, as their providers published them. They are a starting point:
// check them against your contract and override them under prices: in the
// configuration. A name ending in * covers every model it prefixes, so dated
// snapshots (gpt-4o-2024-08-06) share their family's price.
func Defaults() map[string]Price {
	return map[string]Price{
		"gpt-4o*":                 USD(2.50, 10.00),
		"gpt-4o-mini*":            USD(0.15, 0.60),
		"gpt-4.1*":                USD(2.00, 8.00),
		"gpt-4.1-mini*":           USD(0.40, 1.60),
		"gpt-4.1-nano*":           USD(0.10, 0.40),
		"gpt-5*":                  USD(1.25, 10.00),
		"gpt-5-mini*":             USD(0.25, 2.00),
		"gpt-5-nano*":             USD(0.05, 0.40),
		"o3*":                     USD(2.00, 8.00),
		"o3-mini*":                USD(1.10, 4.40),
		"o4-mini*":                USD(1.10, 4.40),
		"text-embedding-3-small*": USD(0.02, 0),
		"text-embedding-3-large*": USD(0.13, 0),
		"claude-opus-4-5*":        USD(5.00, 25.00),
		"claude-opus-4*":          USD(15.00, 75.00),
		"claude-sonnet-4*":        USD(3.00, 15.00),
		"claude-3-7-sonnet*":      USD(3.00, 15.00),
		"claude-haiku-4-5*":       USD(1.00, 5.00),
		"claude-3-5-haiku*":       USD(0.80, 4.00),
	}
}

// Table looks up model prices: an exact name first, then the longest
// matching name ending in *.
type Table struct {
	exact    map[string]Price
	prefixes []prefixPrice // longest first
}

type prefixPrice struct {
	prefix string
	price  Price
}

// NewTable builds a Table from Defaults with overrides applied on top (an
// override replaces the default of the same name).
func NewTable(overrides map[string]Price) (*Table, error) {
	all := Defaults()
	for name, p := range overrides {
		if name == "" || strings.Count(name, "*") > 1 || (strings.Contains(name, "*") && !strings.HasSuffix(name, "*")) {
			return nil, fmt.Errorf("pricing: model %q: use an exact model name, or a prefix ending in *", name)
		}
		if p.Input < 0 || p.Output < 0 {
			return nil, fmt.Errorf("pricing: model %q: prices must not be negative", name)
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

// Lookup returns the price of a model, as the upstream names it.
func (t *Table) Lookup(model string) (Price, bool) {
	if p, ok := t.exact[model]; ok {
		return p, true
	}
	for _, pp := range t.prefixes {
		if strings.HasPrefix(model, pp.prefix) {
			return pp.price, true
		}
	}
	return Price{}, false
}
