package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Change topics: what every node caches and must reload when any node
// changes it. Triggers on the tables behind each topic bump its generation
// in the same transaction as the change (migration 21), so no write path
// can forget to announce itself.
const (
	// TopicProviders covers providers and passthrough services.
	TopicProviders = "providers"
	// TopicKeyGroups covers key groups and their shared limits.
	TopicKeyGroups = "key_groups"
	// TopicSigningKeys covers the token signing keys.
	TopicSigningKeys = "signing_keys"
	// TopicKEKs covers key-encryption keys and the start of a KEK rotation.
	TopicKEKs = "keks"
	// TopicRevocations covers the revocation log.
	TopicRevocations = "revocations"
	// TopicSecrets covers vault records' versions being added or destroyed.
	TopicSecrets = "secrets"
	// TopicMCPServers covers the MCP servers keygate fronts.
	TopicMCPServers = "mcp_servers"
)

// changesChannel is the PostgreSQL NOTIFY channel the triggers send the
// topic on.
const changesChannel = "keygate_changes"

// ErrListenUnsupported is returned by Listen on a database that cannot push
// changes (SQLite: the nodes sharing a file read the generations instead).
var ErrListenUnsupported = errors.New("store: this database cannot push change notifications; read ChangeGenerations instead")

// ChangeGenerations returns every topic's generation. A topic whose
// generation differs from the last one read has changed since.
func (s *Store) ChangeGenerations(ctx context.Context) (map[string]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT topic, gen FROM changes`)
	if err != nil {
		return nil, fmt.Errorf("store: read change generations: %w", err)
	}
	defer rows.Close()
	gens := make(map[string]int64, 8)
	for rows.Next() {
		var topic string
		var gen int64
		if err := rows.Scan(&topic, &gen); err != nil {
			return nil, fmt.Errorf("store: read change generations: %w", err)
		}
		gens[topic] = gen
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read change generations: %w", err)
	}
	return gens, nil
}

// Listen calls notify with a topic each time a transaction that changed it
// commits, on any node, until ctx ends or the connection fails; it returns
// the reason. ready is called once the listening connection is
// established: only changes committed after it are sure to be seen, so a
// caller reads ChangeGenerations then. Notifications can be lost while no
// connection listens, so callers keep reading the generations as well.
// On SQLite it returns ErrListenUnsupported at once.
func (s *Store) Listen(ctx context.Context, ready func(), notify func(topic string)) error {
	if s.dialect != Postgres || s.inTx {
		return ErrListenUnsupported
	}
	conn, err := s.writeDB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: listen for changes: %w", err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		pc, ok := dc.(interface{ Conn() *pgx.Conn })
		if !ok {
			return fmt.Errorf("store: listen for changes: the PostgreSQL driver is %T, not pgx", dc)
		}
		c := pc.Conn()
		if _, err := c.Exec(ctx, "LISTEN "+changesChannel); err != nil {
			return fmt.Errorf("store: listen for changes: %w", err)
		}
		ready()
		for {
			n, err := c.WaitForNotification(ctx)
			if err != nil {
				// The connection is left listening, or broken: never hand
				// it back to the pool.
				return fmt.Errorf("store: listen for changes: %w (%w)", err, driver.ErrBadConn)
			}
			notify(n.Payload)
		}
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
