package limit

import "time"

// SetNodeClock replaces the clock r computes quota periods from, so tests
// can put a keygate node's clock out of step with Redis's.
func SetNodeClock(r *Redis, wall func() time.Time) { r.wall = wall }
