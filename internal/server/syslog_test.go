package server

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/detect"
)

// TestAuditAndAlertsShareOneSyslogWriter: audit.syslog and
// alerts.syslog naming one collector reach it over one connection, with
// one host name and the configured format.
func TestAuditAndAlertsShareOneSyslogWriter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := make(chan int, 4)
	lines := make(chan string, 4)
	go func() {
		n := 0
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n++
			conns <- n
			go func() {
				r := bufio.NewReader(c)
				for {
					size, err := r.ReadString(' ')
					if err != nil {
						return
					}
					k, _ := strconv.Atoi(strings.TrimSpace(size))
					b := make([]byte, k)
					if _, err := io.ReadFull(r, b); err != nil {
						return
					}
					lines <- string(b)
				}
			}()
		}
	}()
	cfg := config.Config{}
	cfg.Audit.Syslog = "tcp://" + ln.Addr().String()
	cfg.Alerts.Syslog = cfg.Audit.Syslog
	cfg.Syslog.Format, cfg.Syslog.Hostname = "cef", "gw-test"
	p := &plan{cfg: cfg}
	p.syslogs, err = newSyslogWriters(p, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer p.syslogs.close()
	ctx := context.Background()
	wa, err := p.syslogs.writer(ctx, cfg.Audit.Syslog)
	if err != nil {
		t.Fatal(err)
	}
	wb, err := p.syslogs.writer(ctx, cfg.Alerts.Syslog)
	if err != nil {
		t.Fatal(err)
	}
	if wa != wb {
		t.Fatal("audit and alerts to one collector got two writers")
	}
	now := time.Now()
	if err := audit.NewSyslogSink(wa).Write(ctx, []audit.Event{{Seq: 1, Time: now, Type: "request", KeyID: "key_a", Decision: "allow"}}); err != nil {
		t.Fatal(err)
	}
	if err := (&detect.SyslogNotifier{Writer: wb}).Notify(ctx, detect.Alert{ID: "alr_1", Rule: "rate-spike", At: now, Summary: "spike", KeyID: "key_a"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"|request|", "|rate-spike|spike|"} {
		select {
		case l := <-lines:
			if !strings.Contains(l, " gw-test keygate - ") || !strings.Contains(l, "CEF:0|keygate|keygate|test") || !strings.Contains(l, want) {
				t.Errorf("collector received %q, want a CEF line from gw-test with %q", l, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("nothing arrived")
		}
	}
	if n := len(conns); n != 1 {
		t.Fatalf("the collector saw %d connections, want 1", n)
	}
}
