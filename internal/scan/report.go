package scan

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
)

// Formats WriteReport writes.
const (
	FormatText  = "text"
	FormatJSON  = "json"
	FormatSARIF = "sarif"
)

// Sort orders findings by file, line and column, then commit.
func Sort(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return a.Commit < b.Commit
	})
}

// Report is what a scan found, for WriteReport.
type Report struct {
	Findings []Finding
	Stats    Stats
	Rules    []*Rule // the rules run, for SARIF's rule list
	Version  string  // keygate's version, for SARIF
}

// WriteReport writes r in format (text, json or sarif). No format prints a
// secret: text and JSON show Redacted, SARIF the rule and location.
func WriteReport(w io.Writer, format string, r Report) error {
	switch format {
	case FormatText, "":
		return writeText(w, r)
	case FormatJSON:
		fs := r.Findings
		if fs == nil {
			fs = []Finding{}
		}
		b, err := json.MarshalIndent(fs, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	case FormatSARIF:
		return writeSARIF(w, r)
	}
	return fmt.Errorf("scan: --format %q is not known: use text, json or sarif", format)
}

func writeText(w io.Writer, r Report) error {
	var b strings.Builder
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "%s:%d:%d: %s: %s: %s\n", f.File, f.Line, f.Column, f.RuleID, f.Description, f.Redacted)
		if f.Commit != "" {
			fmt.Fprintf(&b, "    added in commit %s by %s <%s> on %s\n", short(f.Commit), f.Author, f.Email, f.Date.UTC().Format("2006-01-02"))
		}
	}
	switch n := len(r.Findings); n {
	case 0:
		fmt.Fprintf(&b, "no credentials found (%d files, %s scanned)\n", r.Stats.Files, size(r.Stats.Bytes))
	default:
		fmt.Fprintf(&b, "%d credential%s found (%d files, %s scanned)\n", n, plural(n), r.Stats.Files, size(r.Stats.Bytes))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func short(h string) string { return h[:min(12, len(h))] }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// SARIF 2.1.0, the subset keygate writes and GitHub code scanning reads.
type (
	sarifLog struct {
		Schema  string     `json:"$schema"`
		Version string     `json:"version"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool    sarifTool     `json:"tool"`
		Results []sarifResult `json:"results"`
	}
	sarifTool struct {
		Driver sarifDriver `json:"driver"`
	}
	sarifDriver struct {
		Name           string      `json:"name"`
		InformationURI string      `json:"informationUri"`
		Version        string      `json:"version,omitempty"`
		Rules          []sarifRule `json:"rules"`
	}
	sarifRule struct {
		ID                   string         `json:"id"`
		Name                 string         `json:"name"`
		ShortDescription     sarifText      `json:"shortDescription"`
		FullDescription      sarifText      `json:"fullDescription"`
		Help                 sarifText      `json:"help"`
		DefaultConfiguration sarifConfig    `json:"defaultConfiguration"`
		Properties           map[string]any `json:"properties"`
	}
	sarifConfig struct {
		Level string `json:"level"`
	}
	sarifText struct {
		Text string `json:"text"`
	}
	sarifResult struct {
		RuleID              string            `json:"ruleId"`
		RuleIndex           int               `json:"ruleIndex"`
		Level               string            `json:"level"`
		Message             sarifText         `json:"message"`
		Locations           []sarifLocation   `json:"locations"`
		PartialFingerprints map[string]string `json:"partialFingerprints"`
		Properties          map[string]any    `json:"properties,omitempty"`
	}
	sarifLocation struct {
		PhysicalLocation sarifPhysical `json:"physicalLocation"`
	}
	sarifPhysical struct {
		ArtifactLocation sarifArtifact `json:"artifactLocation"`
		Region           sarifRegion   `json:"region"`
	}
	sarifArtifact struct {
		URI       string `json:"uri"`
		URIBaseID string `json:"uriBaseId,omitempty"`
	}
	sarifRegion struct {
		StartLine   int `json:"startLine"`
		StartColumn int `json:"startColumn"`
		EndLine     int `json:"endLine"`
		EndColumn   int `json:"endColumn"`
	}
)

// sarifSchema is where the SARIF 2.1.0 schema is published.
const sarifSchema = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"

// relativeURI writes a slash path as a relative URI reference, percent
// encoding what a URI cannot hold.
func relativeURI(p string) string {
	u := (&url.URL{Path: p}).String()
	return strings.TrimPrefix(u, "/")
}

func writeSARIF(w io.Writer, r Report) error {
	byID := map[string]*Rule{}
	for _, ru := range r.Rules {
		byID[ru.ID] = ru
	}
	index := map[string]int{}
	run := sarifRun{Tool: sarifTool{Driver: sarifDriver{Name: "keygate", InformationURI: "https://github.com/keygate/keygate", Version: r.Version, Rules: []sarifRule{}}}, Results: []sarifResult{}}
	for _, f := range r.Findings {
		i, ok := index[f.RuleID]
		if !ok {
			desc := f.Description
			if ru := byID[f.RuleID]; ru != nil {
				desc = ru.Description
			}
			i = len(run.Tool.Driver.Rules)
			index[f.RuleID] = i
			run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{
				ID: f.RuleID, Name: ruleName(f.RuleID),
				ShortDescription: sarifText{desc + " found"},
				FullDescription:  sarifText{"A " + desc + " is written in the repository. Anyone who can read it can use it."},
				Help: sarifText{"Revoke or rotate the credential at its issuer, then remove it from the file and from git history. " +
					"`keygate scan --import` moves found credentials into keygate's vault; `keygate scan --rewrite` replaces them with references `keygate run` resolves."},
				DefaultConfiguration: sarifConfig{Level: "error"},
				Properties:           map[string]any{"tags": []string{"security", "secret", f.Family}, "security-severity": "9.0", "precision": "high"},
			})
		}
		res := sarifResult{
			RuleID: f.RuleID, RuleIndex: i, Level: "error",
			Message: sarifText{fmt.Sprintf("%s found: %s", f.Description, f.Redacted)},
			Locations: []sarifLocation{{PhysicalLocation: sarifPhysical{
				ArtifactLocation: sarifArtifact{URI: relativeURI(f.File), URIBaseID: "%SRCROOT%"},
				Region:           sarifRegion{StartLine: f.Line, StartColumn: f.Column, EndLine: f.EndLine, EndColumn: f.EndColumn + 1},
			}}},
			PartialFingerprints: map[string]string{"keygate/v1": f.Fingerprint},
		}
		if f.Commit != "" {
			res.Properties = map[string]any{"commit": f.Commit, "author": f.Author, "email": f.Email, "date": f.Date.UTC().Format("2006-01-02T15:04:05Z")}
		}
		run.Results = append(run.Results, res)
	}
	b, err := json.MarshalIndent(sarifLog{Schema: sarifSchema, Version: "2.1.0", Runs: []sarifRun{run}}, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ruleName turns a rule ID into SARIF's PascalCase rule name.
func ruleName(id string) string {
	var b strings.Builder
	for _, p := range strings.Split(id, "-") {
		if p != "" {
			b.WriteString(strings.ToUpper(p[:1]) + p[1:])
		}
	}
	return b.String()
}
