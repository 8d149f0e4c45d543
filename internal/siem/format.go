package siem

import (
	"strconv"
	"strings"
	"time"
	"unicode"
)

// SDID is the structured data element keygate's fields travel in; 32473
// is the private enterprise number RFC 5612 sets aside for examples.
const SDID = "keygate@32473"

// Record is one audit event or alert, as its owner describes it.
type Record struct {
	Time time.Time
	// Severity is the syslog severity, 0 (emergency) to 7 (debug).
	Severity int
	// ID is the kind of record: the MSGID, and CEF's Signature ID
	// ("request", "auth.failure", an alert's rule).
	ID string
	// Name is a one-line summary, CEF's Name.
	Name string
	// Fields are the structured fields, in order; empty values are left
	// out. A name may repeat (an event's reasons).
	Fields []Field
	// Text is the RFC 5424 message after the structured data (the full
	// JSON event); CEF sends it as msg only when no field is named msg.
	Text string
}

// Field is one structured field: Name in RFC 5424 structured data, CEF
// its CEF extension key (a standard one such as src or suser, or a
// custom string cs1..cs6, number cn1..cn3 or flexString1..2, which get a
// label of Name). An empty CEF key writes keygate's own key: "keygate"
// and Name in camel case.
type Field struct {
	Name, CEF, Value string
}

// Append appends rec, formatted in the writer's format, without framing.
func (w *Writer) Append(b []byte, rec *Record) []byte {
	b = w.appendHeader(b, rec)
	if w.opts.Format == FormatCEF {
		b = append(b, "- "...)
		return w.appendCEF(b, rec)
	}
	b = append(b, '[')
	b = append(b, SDID...)
	for _, f := range rec.Fields {
		if f.Value == "" {
			continue
		}
		b = append(b, ' ')
		b = append(b, HeaderField(f.Name, 32)...)
		b = append(b, `="`...)
		b = AppendParamValue(b, f.Value)
		b = append(b, '"')
	}
	b = append(b, "] "...)
	return appendOneLine(b, rec.Text)
}

// appendHeader appends the RFC 5424 header up to the structured data.
func (w *Writer) appendHeader(b []byte, rec *Record) []byte {
	sev := min(max(rec.Severity, 0), 7)
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(w.opts.Facility*8+sev), 10)
	b = append(b, ">1 "...)
	b = rec.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, ' ')
	b = append(b, w.opts.Hostname...)
	b = append(b, ' ')
	b = append(b, w.opts.AppName...)
	b = append(b, " - "...)
	b = append(b, HeaderField(rec.ID, 32)...)
	return append(b, ' ')
}

// AppendParamValue escapes v as an RFC 5424 PARAM-VALUE: '"', '\' and
// ']' get a backslash, and control characters, which could end or split
// the line at the collector, become U+FFFD.
func AppendParamValue(b []byte, v string) []byte {
	for _, r := range strings.ToValidUTF8(v, "\uFFFD") {
		switch {
		case r == '"' || r == '\\' || r == ']':
			b = append(b, '\\', byte(r))
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			b = append(b, "\uFFFD"...)
		default:
			b = append(b, string(r)...)
		}
	}
	return b
}

// appendOneLine appends s with line breaks made spaces.
func appendOneLine(b []byte, s string) []byte {
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if r == '\n' || r == '\r' || r == '\u2028' || r == '\u2029' {
			r = ' '
		}
		b = append(b, string(r)...)
	}
	return b
}

// cefSeverity maps a syslog severity to CEF's 0-10.
func cefSeverity(sev int) int {
	switch {
	case sev <= 2:
		return 10
	case sev == 3:
		return 8
	case sev == 4:
		return 6
	case sev == 5:
		return 4
	}
	return 2
}

// labelled are the CEF custom keys that carry a label.
func labelled(key string) bool {
	for _, p := range []string{"cs", "cn", "flexString", "flexNumber", "cfp", "deviceCustomDate"} {
		if strings.HasPrefix(key, p) && len(key) > len(p) && key[len(p)] >= '0' && key[len(p)] <= '9' {
			return true
		}
	}
	return false
}

// appendCEF appends rec as a CEF:0 line:
// CEF:0|keygate|keygate|version|signature|name|severity|extension
func (w *Writer) appendCEF(b []byte, rec *Record) []byte {
	b = append(b, "CEF:0|keygate|keygate|"...)
	b = AppendCEFHeader(b, w.opts.Version)
	b = append(b, '|')
	b = AppendCEFHeader(b, rec.ID)
	b = append(b, '|')
	name := rec.Name
	if name == "" {
		name = rec.ID
	}
	b = AppendCEFHeader(b, name)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(cefSeverity(rec.Severity)), 10)
	b = append(b, '|')
	b = append(b, "rt="...)
	b = strconv.AppendInt(b, rec.Time.UnixMilli(), 10)
	// Repeated names (reasons) become one comma-separated value.
	seen := map[string]bool{}
	hasMsg := false
	for i, f := range rec.Fields {
		if f.Value == "" || seen[f.Name] {
			continue
		}
		seen[f.Name] = true
		v := f.Value
		for _, g := range rec.Fields[i+1:] {
			if g.Name == f.Name && g.Value != "" {
				v += "," + g.Value
			}
		}
		key := f.CEF
		if key == "" {
			key = customKey(f.Name)
		}
		hasMsg = hasMsg || key == "msg"
		b = append(b, ' ')
		b = append(b, key...)
		b = append(b, '=')
		b = AppendCEFValue(b, v)
		if labelled(key) {
			b = append(b, ' ')
			b = append(b, key...)
			b = append(b, "Label="...)
			b = AppendCEFValue(b, f.Name)
		}
	}
	if !hasMsg && rec.Text != "" {
		b = append(b, " msg="...)
		b = AppendCEFValue(b, rec.Text)
	}
	return b
}

// customKey is keygate's own CEF key for a field name: key_id ->
// keygateKeyId. CEF keys are letters and digits only.
func customKey(name string) string {
	var b strings.Builder
	b.WriteString("keygate")
	up := true
	for _, r := range name {
		switch {
		case r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			if up {
				r = unicode.ToUpper(r)
			}
			b.WriteRune(r)
			up = false
		default:
			up = true
		}
	}
	return b.String()
}

// AppendCEFHeader escapes a CEF header field: '\' and '|' get a
// backslash; a line break, which would end the event, becomes a space.
func AppendCEFHeader(b []byte, s string) []byte {
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '\\' || r == '|':
			b = append(b, '\\', byte(r))
		case r == '\n' || r == '\r' || unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			b = append(b, ' ')
		default:
			b = append(b, string(r)...)
		}
	}
	return b
}

// AppendCEFValue escapes a CEF extension value: '\' and '=' get a
// backslash, line breaks are written \n and \r, other control
// characters become U+FFFD. '|' needs no escape in the extension.
func AppendCEFValue(b []byte, s string) []byte {
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '\\' || r == '=':
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\r':
			b = append(b, `\r`...)
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			b = append(b, "\uFFFD"...)
		default:
			b = append(b, string(r)...)
		}
	}
	return b
}
