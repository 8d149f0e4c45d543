package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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

// ChangesChannel is the PostgreSQL NOTIFY channel the triggers send the
// topic on.
const ChangesChannel = "keygate_changes"

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

// ListenConn returns a connection of its own from the pool, for
// pgnotify.Listen to listen on (the store imports no driver, so the
// PostgreSQL-specific part lives there). On SQLite, or inside a
// transaction, it returns ErrListenUnsupported.
func (s *Store) ListenConn(ctx context.Context) (*sql.Conn, error) {
	if s.dialect != Postgres || s.inTx {
		return nil, ErrListenUnsupported
	}
	conn, err := s.writeDB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: listen for changes: %w", err)
	}
	return conn, nil
}
