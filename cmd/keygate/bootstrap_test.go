package main

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/server"
)

// TestBootstrapCredentialSurvivesAFailedFirstStart: a first start that
// cannot bind its gateway or admin port fails with a clear error and
// creates nothing, so the next start is a true first start: it prints the
// admin credential, and the credential works.
func TestBootstrapCredentialSurvivesAFailedFirstStart(t *testing.T) {
	for _, which := range []string{"gateway", "admin"} {
		t.Run(which, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := busy.Addr().String()
			flag := "--listen"
			if which == "gateway" {
				cfg.Listen = addr
			} else {
				cfg.AdminListen = addr
				flag = "--admin-listen"
			}

			var out, errb syncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = server.Run(ctx, cfg, &out, &errb, func(server.Listening) { t.Error("keygate started on a port in use") })
			busy.Close()
			if err == nil {
				t.Fatal("keygate started although its port is in use")
			}
			for _, want := range []string{which + " listener", addr, "in use", flag} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			if strings.Contains(out.String(), "kg_admin_") {
				t.Fatal("a failed start printed an admin credential")
			}
			for _, p := range []string{cfg.MasterKeyPath(), cfg.DataDir + "/keygate.db"} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Errorf("a failed start created %s (%v)", p, err)
				}
			}

			// This start is the first real one. It takes a fresh port: the
			// freed one may already be another test's.
			cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
			in := start(t, cfg, "")
			if !strings.HasPrefix(in.admin, "kg_admin_") {
				t.Fatalf("no admin credential: %q", in.admin)
			}
			if got := in.mustCLI(nil, "", "--json", "key", "list"); !strings.Contains(got, "keys") {
				t.Fatalf("key list with the printed credential: %s", got)
			}
		})
	}
}
