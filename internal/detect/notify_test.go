package detect

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/siem"
)

func sampleAlert() Alert {
	return Alert{ID: "ALERT1", At: t0, Rule: RuleRateSpike, KeyID: "key_app", Client: "10.0.0.5", Severity: SeverityMedium,
		Summary: "rate 42.0 req/s is 8.4x the baseline 5.0 req/s (threshold 6x)",
		Numbers: map[string]float64{"rate": 42, "baseline": 5, "ratio": 8.4}, Events: []uint64{7, 8, 9}}
}

// fakeSleep records the waits instead of sleeping.
type fakeSleep struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (f *fakeSleep) sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	f.waits = append(f.waits, d)
	f.mu.Unlock()
	return ctx.Err()
}

func TestWebhookSignsAndRetries(t *testing.T) {
	key := secret.New("whsec-test-0123456789")
	var calls atomic.Int32
	var bodies [][]byte
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !VerifySignature(key, body, r.Header.Get(SignatureHeader)) {
			t.Errorf("signature %q does not verify", r.Header.Get(SignatureHeader))
		}
		if VerifySignature(secret.New("other"), body, r.Header.Get(SignatureHeader)) {
			t.Error("signature verifies under the wrong secret")
		}
		mu.Lock()
		bodies = append(bodies, body)
		mu.Unlock()
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	sl := &fakeSleep{}
	w := &WebhookNotifier{URL: secret.New(srv.URL + "/hook?token=url-token"), Secret: key, Client: srv.Client(),
		Retry: Retry{Attempts: 5, Sleep: sl.sleep}}
	if err := w.Notify(context.Background(), sampleAlert()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if calls.Load() != 3 {
		t.Errorf("%d calls, want 3 (two 500s then success)", calls.Load())
	}
	if want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}; !equalDurations(sl.waits, want) {
		t.Errorf("backoff %v, want %v", sl.waits, want)
	}
	var got Alert
	if err := json.Unmarshal(bodies[0], &got); err != nil || got.ID != "ALERT1" || got.Numbers["ratio"] != 8.4 || got.KeyID != "key_app" {
		t.Errorf("body %s decodes to %+v, %v", bodies[0], got, err)
	}
	if !strings.HasPrefix(Sign(key, bodies[0]), "sha256=") || len(Sign(key, bodies[0])) != len("sha256=")+64 {
		t.Errorf("signature %q is not sha256=<64 hex>", Sign(key, bodies[0]))
	}
}

func TestWebhookGivesUp(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	sl := &fakeSleep{}
	w := &WebhookNotifier{URL: secret.New(srv.URL + "/hook?token=url-token"), Secret: secret.New("k"), Client: srv.Client(),
		Retry: Retry{Attempts: 4, Sleep: sl.sleep}}
	err := w.Notify(context.Background(), sampleAlert())
	if err == nil {
		t.Fatal("Notify succeeded against a server that always fails")
	}
	if calls.Load() != 4 || len(sl.waits) != 3 {
		t.Errorf("%d calls and %d waits, want 4 and 3", calls.Load(), len(sl.waits))
	}
	if !strings.Contains(err.Error(), "attempt 4 of 4: status 502") || strings.Contains(err.Error(), "url-token") {
		t.Errorf("error %q: want the last attempt's status and no URL token", err)
	}

	// A client error is not retried.
	calls.Store(0)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	})
	if err := w.Notify(context.Background(), sampleAlert()); err == nil || calls.Load() != 1 {
		t.Errorf("401: err %v after %d calls, want an error after 1", err, calls.Load())
	}

	// A deadline ends the retries early; a refused connection's error does not echo the URL.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String() + "/x?token=url-token"
	ln.Close()
	w = &WebhookNotifier{URL: secret.New(dead), Secret: secret.New("k"), Retry: Retry{Attempts: 50}}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = w.Notify(ctx, sampleAlert())
	if err == nil || time.Since(start) > 2*time.Second || strings.Contains(err.Error(), "url-token") {
		t.Errorf("unreachable receiver: err %v after %v", err, time.Since(start))
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSlackShape(t *testing.T) {
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("content type %q", r.Header.Get("Content-Type"))
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	a := sampleAlert()
	a.Summary += " <script>&"
	s := &SlackNotifier{URL: secret.New(srv.URL + "/services/T000/B000/XXXX"), Client: srv.Client()}
	if err := s.Notify(context.Background(), a); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	var msg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text struct {
				Type, Text string
			} `json:"text"`
			Fields []struct {
				Type, Text string
			} `json:"fields"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if !strings.Contains(msg.Text, "rate-spike") || !strings.Contains(msg.Text, "8.4x") {
		t.Errorf("text %q lacks the rule and summary", msg.Text)
	}
	if len(msg.Blocks) < 1 || msg.Blocks[0].Type != "section" || msg.Blocks[0].Text.Type != "mrkdwn" {
		t.Fatalf("blocks %s, want a mrkdwn section first", body)
	}
	sec := msg.Blocks[0]
	if !strings.Contains(sec.Text.Text, "&lt;script&gt;&amp;") {
		t.Errorf("section text %q is not escaped", sec.Text.Text)
	}
	fields := map[string]string{}
	for _, f := range sec.Fields {
		name, val, _ := strings.Cut(f.Text, "\n")
		fields[name] = val
	}
	if fields["*Key*"] != "key_app" || fields["*Client*"] != "10.0.0.5" || fields["*Severity*"] != "medium" || fields["*ratio*"] != "8.4" {
		t.Errorf("fields %v", fields)
	}
	if len(sec.Fields) > 10 {
		t.Errorf("%d fields, Slack takes at most 10", len(sec.Fields))
	}
}

func TestSyslogUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	w, err := siem.Dial(context.Background(), siem.Options{URL: "udp://" + pc.LocalAddr().String(), Hostname: "gw-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s := &SyslogNotifier{Writer: w}
	a := sampleAlert()
	a.Client = `10.0.0.5"]`
	if err := s.Notify(context.Background(), a); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	buf := make([]byte, 4096)
	_ = pc.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	line := string(buf[:n])
	t.Log(line)
	// facility 10 (authpriv) * 8 + severity 4 (warning) = 84
	re := regexp.MustCompile(`^<84>1 2026-03-02T09:00:00\.000000Z gw-1 keygate - rate-spike \[keygate@32473 id="ALERT1" severity="medium" key="key_app" client="10\.0\.0\.5\\"\\]" baseline="5" rate="42" ratio="8\.4" events="7,8,9"\] rate 42\.0 req/s is 8\.4x`)
	if !re.MatchString(line) || strings.Contains(line, "\n") {
		t.Errorf("line %q is not the expected RFC 5424 message", line)
	}
}

// slowNotifier blocks until released, to show the Engine's side never waits.
type slowNotifier struct {
	release chan struct{}
	mu      sync.Mutex
	got     []string
}

func (s *slowNotifier) Notify(ctx context.Context, a Alert) error {
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	s.got = append(s.got, a.ID)
	s.mu.Unlock()
	return nil
}

type failNotifier struct{}

func (failNotifier) Notify(context.Context, Alert) error { return errors.New("receiver down") }

func TestDispatcher(t *testing.T) {
	var clock atomic.Int64
	now := func() time.Time { return t0.Add(time.Duration(clock.Load())) }
	slow := &slowNotifier{release: make(chan struct{})}
	var errs atomic.Int32
	d, err := NewDispatcher(map[string]Notifier{"slow": slow, "down": failNotifier{}},
		DispatcherOptions{Queue: 2, Now: now, OnError: func(string, Alert, error) { errs.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < 5; i++ {
		a := sampleAlert()
		a.ID = string(rune('a' + i))
		d.Emit(a)
	}
	// The stuck notifier holds until release below: an Emit that waited
	// on it would still be waiting, so any generous bound tells them apart.
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Emit blocked for %v on a stuck notifier", el)
	}
	clock.Add(int64(250 * time.Millisecond))
	close(slow.release)
	if err := d.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	stats := d.Latency()
	if len(stats) != 2 || stats[0].Notifier != "down" || stats[1].Notifier != "slow" {
		t.Fatalf("stats %+v", stats)
	}
	down, s := stats[0], stats[1]
	// The slow worker holds one alert and queues two; two are dropped.
	if s.Delivered+s.Dropped != 5 || s.Dropped < 2 || s.Max < 250*time.Millisecond || s.P50 == 0 {
		t.Errorf("slow notifier stats %+v", s)
	}
	if down.Failed+down.Dropped != 5 || down.Delivered != 0 {
		t.Errorf("failing notifier stats %+v", down)
	}
	if int64(errs.Load()) != down.Failed+down.Dropped+s.Dropped {
		t.Errorf("OnError heard %d, want every failure and drop", errs.Load())
	}
	d.Emit(sampleAlert()) // after Close: ignored, no panic
}

// TestEngineToDispatcher wires the engine to a webhook through the dispatcher, as keygate does.
func TestEngineToDispatcher(t *testing.T) {
	got := make(chan Alert, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a Alert
		_ = json.NewDecoder(r.Body).Decode(&a)
		got <- a
	}))
	defer srv.Close()
	d, err := NewDispatcher(map[string]Notifier{"hook": &WebhookNotifier{URL: secret.New(srv.URL), Secret: secret.New("k"), Client: srv.Client()}}, DispatcherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(Config{}, func() time.Time { return t0 }, d.Emit)
	if err != nil {
		t.Fatal(err)
	}
	e.Observe(Observation{KeyID: "key_x", Client: "192.0.2.9", RefreshReuse: true, EventSeq: 77})
	select {
	case a := <-got:
		if a.Rule != RuleRefreshReuse || a.KeyID != "key_x" || len(a.Events) != 1 || a.Events[0] != 77 {
			t.Errorf("delivered %+v", a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("alert not delivered")
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
