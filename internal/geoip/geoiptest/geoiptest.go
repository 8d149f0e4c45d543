// Package geoiptest builds small GeoIP databases for tests, so tests of
// keygate's geo rules need no real MaxMind download.
package geoiptest

import (
	"cmp"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/keygate/keygate/internal/policy"
)

// WriteDB writes a GeoLite2-City-format database holding the given networks
// (CIDR such as "81.0.0.0/16" or "2001:db8::/32", IPv4 or IPv6) to a
// temporary directory and returns its path. Each record has the country's
// ISO code when Location.Country is set and the coordinates when
// Location.HasCoords; Location.Network is ignored. More specific networks
// win over the wider networks they sit in. Reserved ranges such as the
// documentation networks (192.0.2.0/24, 2001:db8::/32) are accepted, though
// geoip.DB.Lookup still reports private and loopback addresses as unknown.
// The test fails on a bad CIDR.
func WriteDB(t testing.TB, records map[string]policy.Location) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "GeoLite2-City",
		Description:             map[string]string{"en": "keygate test database"},
		Languages:               []string{"en"},
		IncludeReservedNetworks: true,
		RecordSize:              28,
	})
	if err != nil {
		t.Fatalf("geoiptest: new database: %v", err)
	}

	type entry struct {
		prefix netip.Prefix
		loc    policy.Location
	}
	entries := make([]entry, 0, len(records))
	for cidr, loc := range records {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			t.Fatalf("geoiptest: record key %q is not a CIDR such as 203.0.113.0/24: %v", cidr, err)
		}
		entries = append(entries, entry{p.Masked(), loc})
	}
	// Wider networks first, so narrower ones inserted later replace their part.
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.prefix.Bits(), b.prefix.Bits()), a.prefix.Addr().Compare(b.prefix.Addr()))
	})
	for _, e := range entries {
		rec := mmdbtype.Map{}
		if e.loc.Country != "" {
			rec["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(e.loc.Country)}
		}
		if e.loc.HasCoords {
			rec["location"] = mmdbtype.Map{
				"latitude":  mmdbtype.Float64(e.loc.Lat),
				"longitude": mmdbtype.Float64(e.loc.Lon),
			}
		}
		n := &net.IPNet{IP: e.prefix.Addr().AsSlice(), Mask: net.CIDRMask(e.prefix.Bits(), e.prefix.Addr().BitLen())}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatalf("geoiptest: insert %s: %v", e.prefix, err)
		}
	}

	path := filepath.Join(t.TempDir(), "GeoLite2-City.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("geoiptest: %v", err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		f.Close()
		t.Fatalf("geoiptest: write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("geoiptest: write %s: %v", path, err)
	}
	return path
}
