package translate

import "github.com/keygate/keygate/internal/jsonpeek"

// The stream translators read upstream events with jsonpeek's Scanner,
// which finds members and array elements as raw slices without decoding
// them, so strings (text deltas, ids, argument fragments) are copied to the
// output verbatim: a JSON string has the same encoding in both APIs. These
// helpers read the raw values it returns.

// field returns the raw value of the first member of obj named key, or nil
// when obj is not an object or has no such member.
func field(obj []byte, key string) []byte {
	s := jsonpeek.NewScanner(obj)
	for k, ok := s.FirstMember(); ok; k, ok = s.NextMember() {
		match := string(k) == key
		v := s.Skip()
		if match {
			return v
		}
	}
	return nil
}

// isString reports whether raw is a JSON string token.
func isString(raw []byte) bool { return len(raw) >= 2 && raw[0] == '"' }

// nonEmptyString reports whether raw is a JSON string with at least one
// character.
func nonEmptyString(raw []byte) bool { return len(raw) > 2 && raw[0] == '"' }

// isNull reports whether raw is absent or the JSON null.
func isNull(raw []byte) bool { return len(raw) == 0 || string(raw) == "null" }

// uint64Of reads raw as a non-negative whole number; anything else reads as
// 0, false.
func uint64Of(raw []byte) (uint64, bool) {
	if len(raw) == 0 || raw[0] == '-' {
		return 0, false
	}
	n, ok := jsonpeek.ParseInt(raw)
	return uint64(n), ok
}
