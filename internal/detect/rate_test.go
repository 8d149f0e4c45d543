package detect

import (
	"strings"
	"testing"
)

func TestRateSpike(t *testing.T) {
	r := newRig(t, Config{})
	chat := Observation{KeyID: "key_app", Client: "10.0.0.5", Provider: "openai", Model: "gpt-4o-mini", Path: "/v1/chat/completions"}
	burst := Observation{KeyID: "key_new", Client: "10.0.0.6", Provider: "openai", Model: "gpt-4o-mini", Path: "/v1/chat/completions"}
	steady := func(rate func(sec int) int) func(int) {
		return func(sec int) {
			for i := 0; i < rate(sec); i++ {
				r.observe(chat)
			}
		}
	}
	normal := func(sec int) int { return []int{4, 5, 6, 5}[sec%4] } // 5 req/s on average

	// Normal phase, baseline formation included: 10 minutes of ordinary traffic, and a second
	// key that bursts to 100 req/s while its baseline is still forming.
	r.run(600, func(sec int) {
		steady(normal)(sec)
		if sec >= 30 && sec < 50 {
			for i := 0; i < 100; i++ {
				r.observe(burst)
			}
		}
	})
	r.expectNone("normal traffic and baseline formation")

	// The anomaly: 42 req/s. It trips once the 10 s window's rate passes 6 x 5 req/s,
	// with the request that crosses it, not at the next tick.
	tripped := -1
	r.run(60, func(sec int) {
		for i := 0; i < 42; i++ {
			r.observe(chat)
			if tripped < 0 && len(r.peek()) > 0 {
				tripped = sec
				if i == 41 {
					t.Error("the spike was alerted only with the second's last request")
				}
			}
		}
	})
	if tripped < 0 {
		t.Fatal("no alert between ticks")
	}
	a := r.expectOne("spike", RuleRateSpike, false)
	t.Log(a.Summary)
	if a.KeyID != "key_app" || a.Severity != SeverityMedium {
		t.Errorf("alert for key %q severity %q, want key_app medium", a.KeyID, a.Severity)
	}
	base, rate := a.Numbers["baseline"], a.Numbers["rate"]
	if !near(base, 5, 0.1) {
		t.Errorf("baseline %.3f req/s, want about 5", base)
	}
	if rate <= 6*base || rate > 42 || a.Numbers["factor"] != 6 || !near(a.Numbers["ratio"], rate/base, 1e-9) {
		t.Errorf("numbers %v do not show a rate above 6x the baseline", a.Numbers)
	}
	if !strings.Contains(a.Summary, "req/s is") || !strings.Contains(a.Summary, "(threshold 6x") {
		t.Errorf("summary %q lacks the numbers", a.Summary)
	}
	if len(a.Events) != 16 || a.Events[15] == 0 || a.Events[0] >= a.Events[15] {
		t.Errorf("events %v, want the 16 latest in order", a.Events)
	}

	// Recovery: back to normal; one notice once the rate has stayed under the threshold 30 s.
	r.run(60, steady(normal))
	rec := r.expectOne("recovery", RuleRateSpike, true)
	if rec.KeyID != "key_app" || !near(rec.Numbers["baseline"], 5, 0.1) {
		t.Errorf("recovery %+v, want key_app with the frozen 5 req/s baseline", rec)
	}
	r.run(600, steady(normal))
	r.expectNone("after recovery")
}

func TestRateSpikeNeedsFloor(t *testing.T) {
	r := newRig(t, Config{})
	o := Observation{KeyID: "key_slow", Model: "m"}
	// One request a minute, then ten in a second: far above the baseline, but under 1 req/s
	// over the 10 s window.
	r.run(900, func(sec int) {
		if sec%60 == 0 {
			r.observe(o)
		}
	})
	r.run(20, func(sec int) {
		if sec == 0 {
			for i := 0; i < 9; i++ {
				r.observe(o)
			}
		}
	})
	r.expectNone("below the floor")
}
