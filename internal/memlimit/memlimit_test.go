package memlimit

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// TestSet: the configured limit wins, then GOMEMLIMIT, then the
// container's limit, then none.
func TestSet(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	noEnv := func(string) string { return "" }
	cgroup := func(t *testing.T, file, content string) string {
		dir := t.TempDir()
		p := filepath.Join(dir, file)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	v2 := cgroup(t, "memory.max", "1073741824\n")
	v1 := cgroup(t, "memory/memory.limit_in_bytes", "536870912\n")
	unlimited := cgroup(t, "memory.max", "max\n")
	v1Unlimited := cgroup(t, "memory/memory.limit_in_bytes", "9223372036854771712\n")

	for _, tc := range []struct {
		name       string
		configured int64
		getenv     func(string) string
		root       string
		want       int64
		from       Source
	}{
		{"configured", 256 << 20, noEnv, v2, 256 << 20, FromConfig},
		{"container v2", 0, noEnv, v2, 966367641, FromContainer},
		{"container v1", 0, noEnv, v1, 483183820, FromContainer},
		{"no container limit", 0, noEnv, unlimited, 0, None},
		{"v1 without a limit", 0, noEnv, v1Unlimited, 0, None},
		{"no cgroup", 0, noEnv, t.TempDir(), 0, None},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(math.MaxInt64)
			got, from := Set(tc.configured, tc.getenv, tc.root)
			if got != tc.want || from != tc.from {
				t.Fatalf("Set = %d from %s, want %d from %s", got, from, tc.want, tc.from)
			}
			want := tc.want
			if want == 0 {
				want = math.MaxInt64
			}
			if l := debug.SetMemoryLimit(-1); l != want {
				t.Fatalf("runtime limit %d, want %d", l, want)
			}
		})
	}

	// GOMEMLIMIT, applied by the runtime at start, is left as it is.
	debug.SetMemoryLimit(300 << 20)
	got, from := Set(0, func(k string) string {
		if k == "GOMEMLIMIT" {
			return "300MiB"
		}
		return ""
	}, v2)
	if got != 300<<20 || from != FromGOMEMLIMIT {
		t.Fatalf("with GOMEMLIMIT: %d from %s", got, from)
	}
}
