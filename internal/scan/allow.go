package scan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// AllowList takes findings out of reports. It is read from a YAML file:
//
//	paths:        # globs, relative to the scan root; ** spans directories
//	  - testdata/**
//	  - "**/*.golden"
//	rules:        # rule IDs not to report
//	  - jwt
//	fingerprints: # single findings (the fingerprint column of the JSON output)
//	  - 3f2a9c0d1e4b5a6978c0d1e2f3a4b5c6
//	secrets:      # regular expressions a secret is allowed by
//	  - ^sk_test_
type AllowList struct {
	Paths        []string `yaml:"paths"`
	Rules        []string `yaml:"rules"`
	Fingerprints []string `yaml:"fingerprints"`
	Secrets      []string `yaml:"secrets"`

	paths   []*regexp.Regexp
	rules   map[string]bool
	fps     map[string]bool
	secrets []*regexp.Regexp
}

// LoadAllowList reads and compiles an allow-list file.
func LoadAllowList(path string) (*AllowList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("allow-list: %w", err)
	}
	var a AllowList
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&a); err != nil && err.Error() != "EOF" {
		return nil, fmt.Errorf("allow-list %s: %w (it takes the keys paths, rules, fingerprints and secrets)", path, err)
	}
	if err := a.compile(); err != nil {
		return nil, fmt.Errorf("allow-list %s: %w", path, err)
	}
	return &a, nil
}

func (a *AllowList) compile() error {
	a.rules, a.fps = map[string]bool{}, map[string]bool{}
	for _, r := range a.Rules {
		a.rules[r] = true
	}
	for _, f := range a.Fingerprints {
		a.fps[strings.ToLower(strings.TrimSpace(f))] = true
	}
	for i, g := range a.Paths {
		re, err := globRegexp(g)
		if err != nil {
			return fmt.Errorf("paths[%d] %q: %w", i, g, err)
		}
		a.paths = append(a.paths, re)
	}
	for i, s := range a.Secrets {
		re, err := regexp.Compile(s)
		if err != nil {
			return fmt.Errorf("secrets[%d]: not a valid regular expression: %w", i, err)
		}
		a.secrets = append(a.secrets, re)
	}
	return nil
}

// globRegexp turns a glob into a regular expression over slash paths: *
// and ? stay within a path segment, ** spans any number of them.
func globRegexp(g string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); i++ {
		switch c := g[i]; c {
		case '*':
			if i+1 < len(g) && g[i+1] == '*' {
				i++
				if i+1 < len(g) && g[i+1] == '/' {
					i++
					b.WriteString("(?:.*/)?")
				} else {
					b.WriteString(".*")
				}
			} else {
				b.WriteString("[^/]*")
			}
		case '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// SkipsPath reports whether every finding in the file at slash path p is
// allowed, so the file need not be read.
func (a *AllowList) SkipsPath(p string) bool {
	if a == nil {
		return false
	}
	for _, re := range a.paths {
		if re.MatchString(p) {
			return true
		}
	}
	return false
}

// Allows reports whether f is taken out of reports.
func (a *AllowList) Allows(f Finding) bool {
	if a == nil {
		return false
	}
	if a.rules[f.RuleID] || a.fps[f.Fingerprint] || a.SkipsPath(f.File) {
		return true
	}
	for _, re := range a.secrets {
		if re.MatchString(f.Secret.Reveal()) {
			return true
		}
	}
	return false
}

// Baseline is the set of findings a repository already had when it was
// taken: `--baseline FILE` reports only findings not in it. A baseline is
// the JSON output of an earlier scan.
type Baseline struct {
	fps map[string]bool
}

// LoadBaseline reads a baseline: the JSON output of `keygate scan --format
// json`, either its list of findings or an object holding them under
// "findings".
func LoadBaseline(path string) (*Baseline, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	var list []struct {
		Fingerprint string `json:"fingerprint"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		var obj struct {
			Findings []struct {
				Fingerprint string `json:"fingerprint"`
			} `json:"findings"`
		}
		if err2 := json.Unmarshal(b, &obj); err2 != nil {
			return nil, fmt.Errorf("baseline %s: not the JSON output of keygate scan: %w; make one with keygate scan --format json --output %s", path, err, path)
		}
		list = obj.Findings
	}
	bl := &Baseline{fps: map[string]bool{}}
	for _, f := range list {
		bl.fps[f.Fingerprint] = true
	}
	return bl, nil
}

// Has reports whether f was in the baseline.
func (b *Baseline) Has(f Finding) bool { return b != nil && b.fps[f.Fingerprint] }

// Len is the number of findings in the baseline.
func (b *Baseline) Len() int {
	if b == nil {
		return 0
	}
	return len(b.fps)
}
