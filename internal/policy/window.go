package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Windows is a set of weekly time windows in which a key may be used, such
// as "mon-fri 08:00-20:00 Europe/Berlin; sat,sun 10:00-14:00 UTC". A time is
// allowed when any window allows it. Each window is judged on the wall clock
// of its own time zone, so it keeps its local hours across daylight-saving
// changes. The zero Windows allows every time. Make one with ParseWindows.
type Windows struct {
	list []window
}

// window is one "DAYS HH:MM-HH:MM ZONE" entry.
type window struct {
	days  uint8 // bit d set: the window opens on time.Weekday d
	start int   // minutes after local midnight, 0..1439
	end   int   // minutes after local midnight, 1..1440; end <= start crosses midnight
	loc   *time.Location
}

// dayName returns the three-letter name of time.Weekday d.
func dayName(d int) string { return "sunmontuewedthufrisat"[3*d : 3*d+3] }

const allDays = 1<<7 - 1

// ParseWindows parses windows separated by ";". Each window is
//
//	DAYS HH:MM-HH:MM ZONE
//
// DAYS is "daily" or a comma-separated list of days and day ranges: "mon-fri",
// "sat,sun", "mon,wed,fri", "fri-mon" (a range may wrap past Sunday). Days
// are written as three letters or in full, in any case. Times run from 00:00
// to 24:00; the end is excluded. A window whose end is not after its start,
// such as "fri 22:00-06:00", crosses midnight: it opens on the listed day and
// closes the next morning, so it allows Friday 23:00 and Saturday 05:00, not
// Friday 05:00. ZONE is an IANA time zone name such as "Europe/Berlin",
// "America/New_York" or "UTC".
//
// An empty spec gives the zero Windows, which allows every time.
func ParseWindows(spec string) (Windows, error) {
	if strings.TrimSpace(spec) == "" {
		return Windows{}, nil
	}
	parts := strings.Split(spec, ";")
	ws := Windows{list: make([]window, 0, len(parts))}
	for _, part := range parts {
		w, err := parseWindow(strings.TrimSpace(part))
		if err != nil {
			return Windows{}, err
		}
		ws.list = append(ws.list, w)
	}
	return ws, nil
}

const windowExample = `"mon-fri 08:00-20:00 Europe/Berlin"`

func parseWindow(s string) (window, error) {
	if s == "" {
		return window{}, fmt.Errorf(`policy: time windows have an empty entry; remove the extra ";" or write a window such as %s`, windowExample)
	}
	f := strings.Fields(s)
	if len(f) != 3 {
		return window{}, fmt.Errorf(`policy: time window %q: want "DAYS HH:MM-HH:MM ZONE", e.g. %s`, s, windowExample)
	}
	var w window
	var err error
	if w.days, err = parseDays(f[0]); err != nil {
		return window{}, fmt.Errorf("policy: time window %q: %w", s, err)
	}
	if w.start, w.end, err = parseSpan(f[1]); err != nil {
		return window{}, fmt.Errorf("policy: time window %q: %w", s, err)
	}
	if w.loc, err = loadZone(f[2]); err != nil {
		return window{}, fmt.Errorf("policy: time window %q: %w", s, err)
	}
	return w, nil
}

func parseDays(s string) (uint8, error) {
	s = strings.ToLower(s)
	if s == "daily" {
		return allDays, nil
	}
	var days uint8
	for _, item := range strings.Split(s, ",") {
		from, to, isRange := strings.Cut(item, "-")
		a, err := parseDay(from)
		if err != nil {
			return 0, err
		}
		b := a
		if isRange {
			if b, err = parseDay(to); err != nil {
				return 0, err
			}
		}
		for d := a; ; d = (d + 1) % 7 {
			days |= 1 << d
			if d == b {
				break
			}
		}
	}
	return days, nil
}

func parseDay(s string) (int, error) {
	for i := range 7 {
		if s == dayName(i) || s == strings.ToLower(time.Weekday(i).String()) {
			return i, nil
		}
	}
	return 0, fmt.Errorf(`%q is not a day; use mon, tue, wed, thu, fri, sat, sun, ranges such as "mon-fri", lists such as "sat,sun", or "daily"`, s)
}

func parseSpan(s string) (start, end int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf(`%q is not a time span; write "HH:MM-HH:MM", e.g. "08:00-20:00" or "22:00-06:00"`, s)
	}
	if start, err = parseClock(a); err != nil {
		return 0, 0, err
	}
	if end, err = parseClock(b); err != nil {
		return 0, 0, err
	}
	if start == 24*60 {
		return 0, 0, fmt.Errorf(`a window cannot start at 24:00; start it at "00:00"`)
	}
	if start == end {
		return 0, 0, fmt.Errorf(`%q starts and ends at the same time; use "00:00-24:00" for the whole day`, s)
	}
	if end == 0 {
		end = 24 * 60 // "22:00-00:00" ends at midnight, the same day
	}
	return start, end, nil
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(h) < 1 || len(h) > 2 || len(m) != 2 ||
		hh < 0 || hh > 24 || mm < 0 || mm > 59 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf(`%q is not a time of day; write "HH:MM" from 00:00 to 24:00`, s)
	}
	return hh*60 + mm, nil
}

func loadZone(name string) (*time.Location, error) {
	if name == "Local" {
		return nil, fmt.Errorf(`"Local" depends on the server's settings; name the zone, e.g. "Europe/Berlin" or "UTC"`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q; use an IANA name such as Europe/Berlin or UTC (if the name is right, this host lacks time zone data: install tzdata)", name)
	}
	return loc, nil
}

// Allows reports whether t falls in one of the windows. The zero Windows
// allows every time.
func (ws Windows) Allows(t time.Time) bool {
	if len(ws.list) == 0 {
		return true
	}
	for _, w := range ws.list {
		if w.allows(t) {
			return true
		}
	}
	return false
}

func (w window) allows(t time.Time) bool {
	lt := t.In(w.loc)
	m := lt.Hour()*60 + lt.Minute()
	d := int(lt.Weekday())
	on := func(day int) bool { return w.days&(1<<day) != 0 }
	if w.start < w.end {
		return on(d) && m >= w.start && m < w.end
	}
	// Crosses midnight: the evening part belongs to today's window, the
	// morning part to yesterday's.
	return (on(d) && m >= w.start) || (on((d+6)%7) && m < w.end)
}

// IsZero reports whether no windows are set, so every time is allowed.
func (ws Windows) IsZero() bool { return len(ws.list) == 0 }

// String returns the windows in the form ParseWindows accepts, with days in
// canonical form ("mon-fri", "sat,sun", "daily"). The zero Windows gives "".
func (ws Windows) String() string {
	parts := make([]string, len(ws.list))
	for i, w := range ws.list {
		parts[i] = fmt.Sprintf("%s %s-%s %s", daysString(w.days), clock(w.start), clock(w.end), w.loc)
	}
	return strings.Join(parts, "; ")
}

// MarshalText encodes the windows as their String form, for configuration files.
func (ws Windows) MarshalText() ([]byte, error) { return []byte(ws.String()), nil }

// UnmarshalText parses windows written as ParseWindows accepts them.
func (ws *Windows) UnmarshalText(b []byte) error {
	v, err := ParseWindows(string(b))
	if err != nil {
		return err
	}
	*ws = v
	return nil
}

func clock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// daysString writes a day set in a Monday-first week: runs of three or more
// days as ranges, shorter runs as lists.
func daysString(days uint8) string {
	if days == allDays {
		return "daily"
	}
	order := [7]int{1, 2, 3, 4, 5, 6, 0}
	var out []string
	for i := 0; i < 7; {
		if days&(1<<order[i]) == 0 {
			i++
			continue
		}
		j := i
		for j+1 < 7 && days&(1<<order[j+1]) != 0 {
			j++
		}
		switch {
		case j-i >= 2:
			out = append(out, dayName(order[i])+"-"+dayName(order[j]))
		default:
			for k := i; k <= j; k++ {
				out = append(out, dayName(order[k]))
			}
		}
		i = j + 1
	}
	return strings.Join(out, ",")
}
