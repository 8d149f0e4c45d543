// Package buildinfo says which keygate is running: the module version and
// the version-control revision the Go toolchain stamps into every binary
// built from a checkout, or the version a release build sets with
// -ldflags "-X main.version=v1.2.3". `keygate version` prints it and the
// admin API reports it, so both always agree.
package buildinfo

import (
	"runtime/debug"
	"strings"
	"time"
)

// Devel is the version of a binary that carries no version at all, such as
// one built by `go run` or `go test` outside a version-control checkout.
const Devel = "(devel)"

// Info describes one keygate binary.
type Info struct {
	Version   string    // a release version, a Go pseudo-version, or Devel
	Revision  string    // the full VCS revision it was built from; empty if unknown
	Time      time.Time // the revision's commit time; zero if unknown
	Modified  bool      // built from a tree with uncommitted changes
	GoVersion string    // the Go toolchain that built it
}

// Read returns the running binary's build information. A non-empty
// override (set at link time for release builds) replaces the module
// version; the revision still comes from the build.
func Read(override string) Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return fromBuildInfo(bi, override)
}

func fromBuildInfo(bi *debug.BuildInfo, override string) Info {
	var in Info
	if bi != nil {
		in.Version = bi.Main.Version
		in.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Revision = s.Value
			case "vcs.time":
				in.Time, _ = time.Parse(time.RFC3339, s.Value)
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if v := strings.TrimSpace(override); v != "" {
		in.Version = v
	}
	if in.Version == "" {
		in.Version = Devel
	}
	return in
}

// String is the one-line version keygate reports, as in
// "v1.4.0 (commit 0123456789ab, 2025-06-01T10:00:00Z)" or
// "(devel) (commit 0123456789ab, 2025-06-01T10:00:00Z, modified)".
func (in Info) String() string {
	var extra []string
	if in.Revision != "" {
		rev := in.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		extra = append(extra, "commit "+rev)
	}
	if !in.Time.IsZero() {
		extra = append(extra, in.Time.UTC().Format(time.RFC3339))
	}
	if in.Modified {
		extra = append(extra, "modified")
	}
	if len(extra) == 0 {
		return in.Version
	}
	return in.Version + " (" + strings.Join(extra, ", ") + ")"
}
