package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// aliasJSON is Alias as JSON: durations written as Go durations ("30s"),
// as the YAML file has them, rather than as nanoseconds.
type aliasJSON struct {
	Strategy       string   `json:"strategy,omitempty"`
	Deployments    []string `json:"deployments"`
	MaxAttempts    int      `json:"max_attempts,omitempty"`
	Timeout        string   `json:"timeout,omitempty"`
	AttemptTimeout string   `json:"attempt_timeout,omitempty"`
}

// MarshalJSON writes the alias with its durations as "30s".
func (a Alias) MarshalJSON() ([]byte, error) {
	j := aliasJSON{Strategy: a.Strategy, Deployments: a.Deployments, MaxAttempts: a.MaxAttempts}
	if j.Deployments == nil {
		j.Deployments = []string{}
	}
	if a.Timeout != 0 {
		j.Timeout = a.Timeout.String()
	}
	if a.AttemptTimeout != 0 {
		j.AttemptTimeout = a.AttemptTimeout.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads an alias whose durations are written as "30s".
func (a *Alias) UnmarshalJSON(b []byte) error {
	var j aliasJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	out := Alias{Strategy: j.Strategy, Deployments: j.Deployments, MaxAttempts: j.MaxAttempts}
	for _, d := range []struct {
		field string
		s     string
		dst   *time.Duration
	}{{"timeout", j.Timeout, &out.Timeout}, {"attempt_timeout", j.AttemptTimeout, &out.AttemptTimeout}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil {
			return fmt.Errorf("%s: %q is not a duration such as 30s or 2m", d.field, d.s)
		}
		*d.dst = v
	}
	*a = out
	return nil
}
