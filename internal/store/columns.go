package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// rowScanner is satisfied by *sql.Row and *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// timeCol scans a NOT NULL time column of either dialect into *t, in UTC.
type timeCol struct{ t *time.Time }

// Scan implements sql.Scanner.
func (c timeCol) Scan(src any) error {
	t, ok, err := parseTime(src)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("unexpected NULL in a required time column")
	}
	*c.t = t
	return nil
}

// nullTimeCol scans an optional time column into *t: NULL becomes nil.
type nullTimeCol struct{ t **time.Time }

// Scan implements sql.Scanner.
func (c nullTimeCol) Scan(src any) error {
	t, ok, err := parseTime(src)
	if err != nil {
		return err
	}
	if !ok {
		*c.t = nil
		return nil
	}
	*c.t = &t
	return nil
}

// parseTime reads INTEGER microseconds (SQLite) or a time.Time (PostgreSQL).
// ok is false for NULL.
func parseTime(src any) (t time.Time, ok bool, err error) {
	switch v := src.(type) {
	case nil:
		return time.Time{}, false, nil
	case int64:
		return time.UnixMicro(v).UTC(), true, nil
	case time.Time:
		return v.UTC(), true, nil
	}
	return time.Time{}, false, fmt.Errorf("cannot read %T as a time", src)
}

// listCol scans a JSON array of strings into *l. Empty arrays read back as nil.
type listCol struct{ l *[]string }

// Scan implements sql.Scanner.
func (c listCol) Scan(src any) error {
	var raw []byte
	switch v := src.(type) {
	case nil:
		*c.l = nil
		return nil
	case string:
		raw = []byte(v)
	case []byte:
		raw = v
	default:
		return fmt.Errorf("cannot read %T as a list of strings", src)
	}
	if s := string(raw); s == "[]" || s == "null" {
		*c.l = nil // most lists are empty: a key lists every key's six
		return nil
	}
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		return fmt.Errorf("read list of strings: %w", err)
	}
	if len(l) == 0 {
		l = nil
	}
	*c.l = l
	return nil
}

// listArg encodes l as a JSON array; nil and empty both become "[]".
func listArg(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, err := json.Marshal(l)
	if err != nil {
		// A []string always marshals; this is unreachable.
		panic(fmt.Sprintf("store: encode list: %v", err))
	}
	return string(b)
}
