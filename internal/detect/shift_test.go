package detect

import (
	"strings"
	"testing"
)

func TestResourceShift(t *testing.T) {
	r := newRig(t, Config{})
	chat := Observation{KeyID: "key_bot", Provider: "openai", Model: "gpt-4o-mini", Path: "/v1/chat/completions"}
	claude := Observation{KeyID: "key_bot", Provider: "anthropic", Model: "claude-sonnet-4", Path: "/v1/messages"}
	embed := Observation{KeyID: "key_bot", Provider: "openai", Model: "text-embedding-3-large", Path: "/v1/embeddings?key=not-a-secret-kept"}
	quiet := Observation{KeyID: "key_quiet", Provider: "openai", Model: "gpt-4o-mini", Path: "/v1/chat/completions"}
	n := 0
	normal := func(sec int) {
		for i := 0; i < 5; i++ { // 5 req/s: four in five to OpenAI chat, one in five to Claude
			n++
			if n%5 == 0 {
				r.observe(claude)
			} else {
				r.observe(chat)
			}
		}
		if sec%5 == 0 { // 12 requests a minute: under the 30 the rule needs to judge
			r.observe(quiet)
		}
	}

	r.run(600, normal)
	r.expectNone("normal mix and baseline formation")

	// The anomaly: the same rate, all of it to embeddings; the quiet key switches too.
	quietEmbed := embed
	quietEmbed.KeyID = "key_quiet"
	r.run(90, func(sec int) {
		for i := 0; i < 5; i++ {
			r.observe(embed)
		}
		if sec%5 == 0 {
			r.observe(quietEmbed)
		}
	})
	a := r.expectOne("shift", RuleResourceShift, false)
	t.Log(a.Summary)
	if a.KeyID != "key_bot" {
		t.Fatalf("alert for key %q, want key_bot", a.KeyID)
	}
	d := a.Numbers["divergence"]
	if d <= 0.5 || d > 1 || a.Numbers["threshold"] != 0.5 || a.Numbers["window_requests"] < 30 {
		t.Errorf("numbers %v, want a divergence above 0.5 over at least 30 requests", a.Numbers)
	}
	if a.Numbers["top_usual_share"] != 0 || a.Numbers["top_share"] < 0.3 {
		t.Errorf("numbers %v, want a top resource that was never used before", a.Numbers)
	}
	if !strings.Contains(a.Summary, "text-embedding-3-large /v1/embeddings now") || strings.Contains(a.Summary, "key=") {
		t.Errorf("summary %q: want the new resource named, without its query string", a.Summary)
	}

	// Recovery once the window holds the usual mix again for a minute.
	r.run(180, normal)
	rec := r.expectOne("recovery", RuleResourceShift, true)
	if rec.KeyID != "key_bot" || rec.Numbers["divergence"] > 0.5 {
		t.Errorf("recovery %+v", rec)
	}
	r.run(600, normal)
	r.expectNone("after recovery")
}

func TestJensenShannonBounds(t *testing.T) {
	same := []resource{{sum: 3, base: 30}, {sum: 1, base: 10}}
	if d := jensenShannon(same, 4, 40); d > 1e-12 {
		t.Errorf("same mix: divergence %v, want 0", d)
	}
	disjoint := []resource{{sum: 5, base: 0}, {sum: 0, base: 7}}
	if d := jensenShannon(disjoint, 5, 7); !near(d, 1, 1e-12) {
		t.Errorf("disjoint mixes: divergence %v, want 1", d)
	}
}
