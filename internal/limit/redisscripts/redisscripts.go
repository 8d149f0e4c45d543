// Package redisscripts runs internal/limit's Lua scripts through a go-redis
// client: EVALSHA, falling back to EVAL the first time a server sees a
// script. It is the only part of admission control that imports a Redis
// driver, so the data plane, which imports internal/limit, does not.
package redisscripts

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Client adapts a go-redis client to limit.Scripts.
type Client struct {
	c       redis.UniversalClient
	mu      sync.Mutex
	scripts map[string]*redis.Script // by source
}

// New returns a Client that runs scripts through c.
func New(c redis.UniversalClient) *Client {
	return &Client{c: c, scripts: map[string]*redis.Script{}}
}

func (x *Client) script(src string) *redis.Script {
	x.mu.Lock()
	defer x.mu.Unlock()
	s, ok := x.scripts[src]
	if !ok {
		s = redis.NewScript(src)
		x.scripts[src] = s
	}
	return s
}

// EvalInts runs the script src and returns its array-of-integers result.
func (x *Client) EvalInts(ctx context.Context, src string, keys []string, args ...any) ([]int64, error) {
	return x.script(src).Run(ctx, x.c, keys, args...).Int64Slice()
}

// EvalStrings runs the script src and returns its array-of-strings result.
func (x *Client) EvalStrings(ctx context.Context, src string, keys []string, args ...any) ([]string, error) {
	return x.script(src).Run(ctx, x.c, keys, args...).StringSlice()
}

// Exec runs the script src and returns only its error.
func (x *Client) Exec(ctx context.Context, src string, keys []string, args ...any) error {
	return x.script(src).Run(ctx, x.c, keys, args...).Err()
}
