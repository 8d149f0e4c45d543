package scan

// Dead reports whether rule id's pattern can no longer match data, the
// bytes from its anchor so far; ok is false for a rule that cannot tell.
func (m *Matcher) Dead(id string, data []byte) (dead, ok bool) {
	for _, r := range m.rules {
		if r.ID == id && r.prefix != nil {
			return r.prefix.dead(data), true
		}
	}
	return false, false
}
