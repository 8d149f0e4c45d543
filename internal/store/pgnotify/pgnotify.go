// Package pgnotify listens for the change notifications keygate's
// PostgreSQL triggers send (store.ChangesChannel). It is apart from
// internal/store so that the store, which the data plane imports for its
// types, links no database driver.
package pgnotify

import (
	"context"
	"database/sql/driver"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/internal/store"
)

// Listen calls notify with a topic each time a transaction that changed it
// commits, on any node, until ctx ends or the connection fails; it returns
// the reason. ready is called once the listening connection is
// established: only changes committed after it are sure to be seen, so a
// caller reads store.ChangeGenerations then. Notifications can be lost
// while no connection listens, so callers keep reading the generations as
// well. On SQLite it returns store.ErrListenUnsupported at once.
func Listen(ctx context.Context, st *store.Store, ready func(), notify func(topic string)) error {
	conn, err := st.ListenConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		pc, ok := dc.(interface{ Conn() *pgx.Conn })
		if !ok {
			return fmt.Errorf("pgnotify: the PostgreSQL driver is %T, not pgx", dc)
		}
		c := pc.Conn()
		if _, err := c.Exec(ctx, "LISTEN "+store.ChangesChannel); err != nil {
			return fmt.Errorf("pgnotify: listen for changes: %w", err)
		}
		ready()
		for {
			n, err := c.WaitForNotification(ctx)
			if err != nil {
				// The connection is left listening, or broken: never hand
				// it back to the pool.
				return fmt.Errorf("pgnotify: listen for changes: %w (%w)", err, driver.ErrBadConn)
			}
			notify(n.Payload)
		}
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
