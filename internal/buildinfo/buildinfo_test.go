package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	t.Parallel()
	stamped := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/keygate/keygate", Version: "v0.0.0-20250601100000-0123456789ab+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2025-06-01T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	cases := []struct {
		name     string
		bi       *debug.BuildInfo
		override string
		want     string
	}{
		{"checkout", stamped, "", "v0.0.0-20250601100000-0123456789ab+dirty (commit 0123456789ab, 2025-06-01T10:00:00Z, modified)"},
		{"release override", stamped, " v1.4.0 ", "v1.4.0 (commit 0123456789ab, 2025-06-01T10:00:00Z, modified)"},
		{"go run", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "", "(devel)"},
		{"no build info", nil, "", "(devel)"},
		{"no build info, override", nil, "v1.4.0", "v1.4.0"},
	}
	for _, c := range cases {
		if got := fromBuildInfo(c.bi, c.override).String(); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if in := fromBuildInfo(stamped, ""); in.Revision != "0123456789abcdef0123456789abcdef01234567" || !in.Modified || in.GoVersion != "go1.26.0" {
		t.Errorf("fields: %+v", in)
	}
}
