package limit_test

import (
	"testing"
	"time"

	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/limit/limittest"
)

func TestMemory(t *testing.T) {
	t.Parallel()
	limittest.Run(t, func(t *testing.T, now func() time.Time) limit.Limiter {
		return limit.NewMemory(limit.WithClock(now))
	})
	t.Run("Shared", func(t *testing.T) {
		t.Skip("a Memory limiter's state lives in one process; nothing else shares it")
	})
}
