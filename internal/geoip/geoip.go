// Package geoip places client addresses on the map for keygate's country and
// travel risk rules. It reads a MaxMind DB (.mmdb) file in the City or
// Country format: GeoLite2-City, GeoIP2-City, GeoLite2-Country or
// GeoIP2-Country.
//
// keygate never downloads a database itself, and ships without one. Users
// get GeoLite2-City free with a MaxMind account
// (https://dev.maxmind.com/geoip/geolite2-free-geolocation-data) and keep it
// current with MaxMind's geoipupdate tool, then point keygate at the file.
// Without a database, country and travel rules see every address as an
// unknown place.
package geoip

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/keygate/keygate/internal/policy"
)

// downloadHint tells users where a database comes from.
const downloadHint = "download GeoLite2-City.mmdb (free with a MaxMind account: https://dev.maxmind.com/geoip/geolite2-free-geolocation-data)"

// DB is an open GeoIP database. It is safe for concurrent use, including
// Close while lookups are running.
type DB struct {
	path string
	info Info

	mu sync.RWMutex      // guards r: Close unmaps the file under lookups' feet otherwise
	r  *maxminddb.Reader // nil once closed
}

// Info describes an open database.
type Info struct {
	Type  string    // e.g. "GeoLite2-City"
	Built time.Time // when the vendor built it; MaxMind publishes updates twice a week
}

// Open opens a City or Country database such as GeoLite2-City.mmdb. It
// checks the file's header and type, not every record; call Verify for a
// full check. The file is memory-mapped: to update it while keygate runs,
// write the new file beside it and rename it into place (as geoipupdate
// does), then open it again; never rewrite it in place.
func Open(path string) (*DB, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("geoip: open %s: no such file; %s and set its path", path, downloadHint)
		}
		return nil, fmt.Errorf("geoip: open %s: not a readable MaxMind DB file (%v); %s again", path, err, downloadHint)
	}
	t := r.Metadata.DatabaseType
	if !hasLocations(t) {
		_ = r.Close()
		return nil, fmt.Errorf("geoip: %s is a %q database, which holds no countries or locations; keygate needs a City or Country database: %s", path, t, downloadHint)
	}
	return &DB{path: path, r: r, info: Info{Type: t, Built: r.Metadata.BuildTime().UTC()}}, nil
}

// hasLocations reports whether a database type carries the City/Country
// record layout ("country" and "location" maps).
func hasLocations(dbType string) bool {
	for _, s := range []string{"City", "Country", "Enterprise"} {
		if strings.Contains(dbType, s) {
			return true
		}
	}
	return false
}

// Info returns the database's type and build time, so operators can see
// which database is in use and how old it is.
func (d *DB) Info() Info { return d.info }

// Verify checks the whole database: its search tree and every record. It
// reads the full file, which takes a moment for a City database, so run it
// once after an update rather than on every start.
func (d *DB) Verify() error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.r == nil {
		return fmt.Errorf("geoip: %s is closed; open it again to verify it", d.path)
	}
	if err := d.r.Verify(); err != nil {
		return fmt.Errorf("geoip: %s is damaged (%v); %s again", d.path, err, downloadHint)
	}
	return nil
}

// record is the part of a City or Country record keygate reads.
type record struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Location struct {
		Latitude  *float64 `maxminddb:"latitude"`
		Longitude *float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
}

// Lookup places addr: its country's ISO code, its coordinates when the
// database has them (City databases), and the database network that holds
// it. It returns false for an address the database does not hold, for
// private, loopback, link-local, multicast and unspecified addresses, for a
// record that cannot be read, and once the DB is closed. IPv4-mapped IPv6
// addresses are looked up as IPv4.
func (d *DB) Lookup(addr netip.Addr) (policy.Location, bool) {
	addr = addr.Unmap().WithZone("")
	if !isPublic(addr) {
		return policy.Location{}, false
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.r == nil {
		return policy.Location{}, false
	}
	res := d.r.Lookup(addr)
	if !res.Found() {
		return policy.Location{}, false
	}
	var rec record
	if err := res.Decode(&rec); err != nil {
		return policy.Location{}, false
	}
	loc := policy.Location{Country: rec.Country.ISOCode, Network: res.Prefix().Masked()}
	if lat, lon := rec.Location.Latitude, rec.Location.Longitude; lat != nil && lon != nil {
		loc.Lat, loc.Lon, loc.HasCoords = *lat, *lon, true
	}
	return loc, true
}

// isPublic reports whether addr could be anywhere on the public internet.
func isPublic(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsPrivate() &&
		!a.IsLinkLocalUnicast() && !a.IsLinkLocalMulticast() && !a.IsInterfaceLocalMulticast() && !a.IsMulticast()
}

// Close releases the database. Lookups after Close report unknown places.
// Closing twice is harmless.
func (d *DB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.r == nil {
		return nil
	}
	err := d.r.Close()
	d.r = nil
	if err != nil {
		return fmt.Errorf("geoip: close %s: %w", d.path, err)
	}
	return nil
}
