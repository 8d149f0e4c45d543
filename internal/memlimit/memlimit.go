// Package memlimit sets the Go runtime's soft memory limit for a keygate
// process: from the configuration, else from the container's memory limit,
// so that the collector works harder as the process nears what it may use
// instead of letting garbage grow to twice the live heap and the container
// be killed.
package memlimit

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// ContainerShare is the share of a container's memory limit given to the
// Go runtime when the configuration sets none: the rest is the executable's
// pages, SQLite's page cache and what the kernel charges besides.
const ContainerShare = 0.9

// Source says where the limit in force came from.
type Source string

// Sources of the limit.
const (
	FromConfig     Source = "memory_limit"
	FromGOMEMLIMIT Source = "GOMEMLIMIT"
	FromContainer  Source = "container"
	None           Source = "none"
)

// Set applies the soft memory limit and reports it (in bytes, 0 for none)
// and where it came from. configured, when positive, is used as is. Else a
// GOMEMLIMIT variable (which the runtime has already applied) is left in
// force; else ContainerShare of the cgroup memory limit read under
// cgroupRoot (normally /sys/fs/cgroup); else there is no limit.
func Set(configured int64, getenv func(string) string, cgroupRoot string) (int64, Source) {
	switch {
	case configured > 0:
		debug.SetMemoryLimit(configured)
		return configured, FromConfig
	case getenv("GOMEMLIMIT") != "":
		if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
			return l, FromGOMEMLIMIT
		}
		return 0, FromGOMEMLIMIT
	}
	if c := containerLimit(cgroupRoot); c > 0 {
		l := int64(float64(c) * ContainerShare)
		debug.SetMemoryLimit(l)
		return l, FromContainer
	}
	return 0, None
}

// containerLimit reads the memory limit of the cgroup this process runs
// in (v2: memory.max; v1: memory.limit_in_bytes), 0 when there is none.
func containerLimit(root string) int64 {
	for _, f := range []string{"memory.max", "memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		// cgroup v1 writes a huge page-aligned number for "no limit".
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0
		}
		return n
	}
	return 0
}
