package geoip_test

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/keygate/keygate/internal/geoip"
	"github.com/keygate/keygate/internal/geoip/geoiptest"
	"github.com/keygate/keygate/internal/policy"
)

var (
	berlin = policy.Location{Country: "DE", Lat: 52.52, Lon: 13.40, HasCoords: true}
	paris  = policy.Location{Country: "FR", Lat: 48.8566, Lon: 2.3522, HasCoords: true}
	sydney = policy.Location{Country: "AU", Lat: -33.8688, Lon: 151.2093, HasCoords: true}
)

// testDB writes and opens a database with a few networks, IPv4 and IPv6.
func testDB(t *testing.T) *geoip.DB {
	t.Helper()
	path := geoiptest.WriteDB(t, map[string]policy.Location{
		"81.0.0.0/16":     berlin,
		"81.0.5.0/24":     paris, // carved out of the Berlin /16
		"2001:db8:1::/48": sydney,
		"203.0.113.0/24":  {Country: "US"}, // country only, as in a Country database
		"198.51.100.0/24": {},              // a record with neither
		"10.0.0.0/8":      berlin,          // private: must never be reported
	})
	db, err := geoip.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestLookup(t *testing.T) {
	db := testDB(t)
	pfx := netip.MustParsePrefix
	withNet := func(l policy.Location, n string) policy.Location { l.Network = pfx(n); return l }
	for _, tc := range []struct {
		addr string
		want policy.Location
		ok   bool
	}{
		{"81.0.1.2", withNet(berlin, "81.0.0.0/22"), true}, // the part of the /16 left beside the /24
		{"81.0.200.1", withNet(berlin, "81.0.128.0/17"), true},
		{"81.0.5.9", withNet(paris, "81.0.5.0/24"), true},
		{"::ffff:81.0.5.9", withNet(paris, "81.0.5.0/24"), true},
		{"2001:db8:1:2::3", withNet(sydney, "2001:db8:1::/48"), true},
		{"2001:db8:1::1%eth0", withNet(sydney, "2001:db8:1::/48"), true},
		{"203.0.113.5", policy.Location{Country: "US", Network: pfx("203.0.113.0/24")}, true},
		{"198.51.100.1", policy.Location{Network: pfx("198.51.100.0/24")}, true},
		{"8.8.8.8", policy.Location{}, false},
		{"81.1.0.1", policy.Location{}, false},
		{"2001:db8:2::1", policy.Location{}, false},
		{"10.1.2.3", policy.Location{}, false},
		{"192.168.1.1", policy.Location{}, false},
		{"127.0.0.1", policy.Location{}, false},
		{"::1", policy.Location{}, false},
		{"fe80::1", policy.Location{}, false},
		{"fd00::1", policy.Location{}, false},
		{"0.0.0.0", policy.Location{}, false},
		{"224.0.0.1", policy.Location{}, false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			got, ok := db.Lookup(netip.MustParseAddr(tc.addr))
			if ok != tc.ok || got != tc.want {
				t.Errorf("Lookup(%s) = %+v, %v; want %+v, %v", tc.addr, got, ok, tc.want, tc.ok)
			}
		})
	}
	if got, ok := db.Lookup(netip.Addr{}); ok {
		t.Errorf("Lookup(invalid) = %+v, true", got)
	}
}

func TestLookupFeedsTheRiskRules(t *testing.T) {
	db := testDB(t)
	from, _ := db.Lookup(netip.MustParseAddr("81.0.1.2"))
	to, _ := db.Lookup(netip.MustParseAddr("2001:db8:1::9"))
	now := time.Date(2025, 3, 18, 12, 0, 0, 0, time.UTC)
	var h policy.History
	h.Observe(policy.Sighting{At: now.Add(-time.Hour), Loc: from}, nil, 0)
	d := policy.Assess(policy.RiskRules{ImpossibleTravel: policy.Deny, NewNetwork: policy.StepUp}, h, now, to, false)
	if d.Action != policy.Deny || len(d.Findings) != 2 {
		t.Fatalf("Berlin to Sydney in an hour: %+v", d)
	}
}

func TestInfo(t *testing.T) {
	info := testDB(t).Info()
	if info.Type != "GeoLite2-City" {
		t.Errorf("Type = %q", info.Type)
	}
	if since := time.Since(info.Built); since < 0 || since > time.Hour {
		t.Errorf("Built = %v, want about now", info.Built)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, err := os.ReadFile(geoiptest.WriteDB(t, map[string]policy.Location{"81.0.0.0/16": berlin}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"missing", filepath.Join(dir, "nope.mmdb"), []string{"nope.mmdb", "no such file", "dev.maxmind.com"}},
		{"empty", write("empty.mmdb", nil), []string{"empty.mmdb", "not a readable MaxMind DB file", "download GeoLite2-City.mmdb"}},
		{"garbage", write("garbage.mmdb", bytes.Repeat([]byte("not a database "), 100)), []string{"garbage.mmdb", "not a readable MaxMind DB file"}},
		{"truncated", write("truncated.mmdb", good[:len(good)/2]), []string{"truncated.mmdb", "not a readable MaxMind DB file"}},
		{"wrong type", writeTyped(t, dir, "GeoLite2-ASN"), []string{`"GeoLite2-ASN" database`, "City or Country"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := geoip.Open(tc.path)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// writeTyped writes a one-network database of the given type.
func writeTyped(t *testing.T, dir, dbType string) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	_, n, _ := net.ParseCIDR("81.0.0.0/16")
	if err := tree.Insert(n, mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(64500)}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, dbType+".mmdb")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVerifyFindsDamage(t *testing.T) {
	path := geoiptest.WriteDB(t, map[string]policy.Location{"81.0.0.0/16": berlin, "2001:db8:1::/48": sydney})
	db, err := geoip.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Verify(); err != nil {
		t.Fatalf("Verify on a good database: %v", err)
	}
	db.Close()
	if err := db.Verify(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Verify after Close: %v", err)
	}

	// Scribble over the search tree, keeping the metadata at the end intact.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 64 && i < len(b); i++ {
		b[i] = 0xff
	}
	damaged := filepath.Join(t.TempDir(), "damaged.mmdb")
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err = geoip.Open(damaged)
	if err != nil {
		if !strings.Contains(err.Error(), "damaged.mmdb") {
			t.Errorf("error %q does not name the file", err)
		}
		return // caught on open: as good as caught by Verify
	}
	defer db.Close()
	if err := db.Verify(); err == nil || !strings.Contains(err.Error(), "damaged.mmdb is damaged") {
		t.Errorf("Verify on a damaged database: %v", err)
	}
	// Lookups in a damaged tree report unknown places instead of failing.
	for _, a := range []string{"81.0.0.1", "2001:db8:1::1", "8.8.8.8"} {
		db.Lookup(netip.MustParseAddr(a))
	}
}

func TestConcurrentLookupAndClose(t *testing.T) {
	db := testDB(t)
	addrs := []netip.Addr{netip.MustParseAddr("81.0.1.2"), netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("8.8.8.8")}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range 8 {
		wg.Go(func() {
			<-start
			for i := range 2000 {
				loc, ok := db.Lookup(addrs[(g+i)%len(addrs)])
				if ok && loc.Country == "" {
					t.Errorf("found a record without its country: %+v", loc)
					return
				}
			}
		})
	}
	close(start)
	time.Sleep(time.Millisecond)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if _, ok := db.Lookup(addrs[0]); ok {
		t.Error("Lookup after Close found a record")
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
