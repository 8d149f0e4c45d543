package detect

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestRateSpikeWithinASecond: a key that has done 1 request a second for ten minutes jumps to
// 25 a second. Judged over the 10 s window alone the alert came 2.1 s after the jump; the short
// window raises it within the jump's first second.
func TestRateSpikeWithinASecond(t *testing.T) {
	r := newRig(t, Config{})
	o := Observation{KeyID: "key_steady", Client: "10.0.0.7", Provider: "openai", Model: "gpt-4o-mini", Path: "/v1/chat/completions"}
	r.runSpread(600, func(int) []Observation { return repeat(o, 1) })
	r.expectNone("ten minutes at 1 req/s")

	start := r.clock()
	r.runSpread(10, func(int) []Observation { return repeat(o, 25) })
	got := r.take()
	if len(got) == 0 {
		t.Fatal("no alert within 10 s of a jump from 1 to 25 req/s")
	}
	a := got[0]
	t.Log(a.Summary)
	if a.Rule != RuleRateSpike || a.KeyID != "key_steady" || a.Recovered {
		t.Fatalf("first alert %s key=%q recovered=%v, want a rate spike of key_steady", a.Rule, a.KeyID, a.Recovered)
	}
	if late := a.At.Sub(start); late > time.Second {
		t.Errorf("alert raised %v after the jump began, want within 1s", late)
	} else {
		t.Logf("alert raised %v after the jump began", late)
	}
	if !near(a.Numbers["baseline"], 1, 0.05) || a.Numbers["rate"] <= 6*a.Numbers["baseline"] {
		t.Errorf("numbers %v, want a rate above 6x a baseline of about 1 req/s", a.Numbers)
	}
	if len(got) != 1 {
		t.Errorf("got %d alerts, want one for the whole spike", len(got))
	}
}

// TestRateIdleKeyThenSteady: a key used a little, idle for half an hour, then at about one
// request a second is not a spike: it has no history to spike against, and 1 req/s is well
// inside what any key may do.
func TestRateIdleKeyThenSteady(t *testing.T) {
	r := newRig(t, Config{})
	o := Observation{KeyID: "key_idle", Model: "m", Path: "/v1/chat/completions"}
	r.runSpread(60, func(sec int) []Observation {
		if sec%12 == 0 {
			return repeat(o, 1)
		}
		return nil
	})
	r.run(30*60, nil)
	pattern := []int{1, 1, 2, 1, 1, 0, 2, 1, 1, 2} // 1.2 req/s
	r.runSpread(30*60, func(sec int) []Observation { return repeat(o, pattern[sec%len(pattern)]) })
	r.expectNone("idle, then about 1 req/s")
}

// poisson draws a Poisson count with mean lambda (Knuth; lambda stays small here).
func poisson(rng *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// TestRateNoFalseAlarms plays an hour and a half of ordinary traffic of many shapes: random
// (Poisson) arrivals at 0.2 to 20 req/s, a key that fires 30 requests at the top of every
// minute, a key that works five minutes and rests five, a key that wakes once a quarter hour
// for a burst. None of it is a spike.
func TestRateNoFalseAlarms(t *testing.T) {
	r := newRig(t, Config{})
	rng := rand.New(rand.NewPCG(1, 2))
	rates := map[string]float64{"key_p02": 0.2, "key_p1": 1, "key_p5": 5, "key_p20": 20}
	r.runSpread(90*60, func(sec int) []Observation {
		var obs []Observation
		for _, id := range []string{"key_p02", "key_p1", "key_p5", "key_p20"} {
			obs = append(obs, repeat(Observation{KeyID: id, Model: "m"}, poisson(rng, rates[id]))...)
		}
		if sec%60 == 0 {
			obs = append(obs, repeat(Observation{KeyID: "key_batch", Model: "m"}, 30)...)
		}
		if (sec/300)%2 == 0 {
			obs = append(obs, repeat(Observation{KeyID: "key_shift", Model: "m"}, poisson(rng, 3))...)
		}
		if sec%900 < 20 {
			obs = append(obs, repeat(Observation{KeyID: "key_cron", Model: "m"}, 4)...)
		}
		rng.Shuffle(len(obs), func(i, j int) { obs[i], obs[j] = obs[j], obs[i] })
		return obs
	})
	r.expectNone("ordinary traffic")
}

// fleet plays n keys at perSec requests a second each, for the fleet's typical rate.
func fleet(n, perSec int) []Observation {
	var obs []Observation
	for i := 0; i < n; i++ {
		obs = append(obs, repeat(Observation{KeyID: fmt.Sprintf("key_fleet%d", i), Model: "m"}, perSec)...)
	}
	return obs
}

// quietThen plays a fleet of five keys at 2 req/s and a key with one request a minute for 20
// minutes, then the quiet key at each of the given rates for 30 s with a minute's rest between.
// It returns the alerts of each phase.
func quietThen(t *testing.T, limitRPS float64, rates ...int) [][]Alert {
	r := newRig(t, Config{})
	quiet := Observation{KeyID: "key_quiet", Model: "m", LimitRPS: limitRPS}
	r.runSpread(20*60, func(sec int) []Observation {
		obs := fleet(5, 2)
		if sec%60 == 0 {
			obs = append(obs, quiet)
		}
		return obs
	})
	r.expectNone("a fleet at 2 req/s and a quiet key")
	var out [][]Alert
	for _, rate := range rates {
		r.runSpread(30, func(int) []Observation { return append(fleet(5, 2), repeat(quiet, rate)...) })
		got := r.take()
		var spikes []Alert
		for _, a := range got {
			if !a.Recovered {
				spikes = append(spikes, a)
			}
		}
		out = append(out, spikes)
		r.runSpread(60, func(int) []Observation { return fleet(5, 2) })
		r.take()
	}
	return out
}

// TestRateLittleHistoryJudgedByFleet: a key with little history is judged against the fleet's
// typical per-key rate (2 req/s here), so it may do 10 req/s (5x) but not 15 (7.5x).
func TestRateLittleHistoryJudgedByFleet(t *testing.T) {
	got := quietThen(t, 0, 10, 15)
	if len(got[0]) != 0 {
		t.Errorf("10 req/s from a key with little history, fleet at 2 req/s: alerted %q", got[0][0].Summary)
	}
	if len(got[1]) != 1 {
		t.Fatalf("15 req/s from a key with little history, fleet at 2 req/s: %d alerts, want 1", len(got[1]))
	}
	a := got[1][0]
	t.Log(a.Summary)
	if a.KeyID != "key_quiet" || !near(a.Numbers["baseline"], 2, 0.01) || !near(a.Numbers["fleet_rate"], 2, 0.01) ||
		a.Numbers["history_seconds"] >= 300 || !strings.Contains(a.Summary, "fleet's typical per-key rate") {
		t.Errorf("alert %s %v, want key_quiet judged against the fleet's 2 req/s", a.KeyID, a.Numbers)
	}
}

// TestRateLittleHistoryJudgedByLimit: a key with little history and a configured limit of
// 50 req/s is taken to use a tenth of it: 20 req/s passes, 40 (over 6 x 5) is a spike.
func TestRateLittleHistoryJudgedByLimit(t *testing.T) {
	got := quietThen(t, 50, 20, 40)
	if len(got[0]) != 0 {
		t.Errorf("20 req/s from a key limited to 50 req/s: alerted %q", got[0][0].Summary)
	}
	if len(got[1]) != 1 {
		t.Fatalf("40 req/s from a key limited to 50 req/s: %d alerts, want 1", len(got[1]))
	}
	a := got[1][0]
	t.Log(a.Summary)
	if !near(a.Numbers["baseline"], 5, 1e-9) || a.Numbers["limit_rps"] != 50 || !strings.Contains(a.Summary, "of its limit of 50 req/s") {
		t.Errorf("alert %v, want key_quiet judged against a tenth of its 50 req/s limit", a.Numbers)
	}
}
