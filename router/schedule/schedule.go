package schedule

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	// The binary carries its own zone database: a schedule must not
	// depend on the host's, which a minimal image lacks and an old host
	// has out of date.
	_ "time/tzdata"
)

// horizon is how many local days ahead NextOpen and NextClose look before
// giving up with the zero time: two years and a week, so that a yearly
// holiday list cannot hide the next opening and a week of windows always
// fits after it.
const horizon = 2*366 + 8

// Schedule is a parsed schedule. It is immutable, so one value serves
// every route and goroutine that refers to it.
type Schedule struct {
	name   string
	loc    *time.Location
	byDay  [7][]window // the windows that start on each weekday
	closed []dayRange  // except days, sorted and merged
}

// window is minutes after local midnight. An end not after start lies on
// the next day; 1440 is 24:00.
type window struct{ start, end int }

// day is a calendar date as days since 1970-01-01, so that dates step and
// compare as integers, whatever the zone.
type day int64

// dayRange is a run of except days, both ends included.
type dayRange struct{ from, to day }

// span is an open stretch [start, end).
type span struct{ start, end time.Time }

// EntryError is one wrong value given to New. Field and Index say which,
// so that the config loader can report it at the YAML node of that list
// entry; Msg says why without repeating the value, so the loader may word
// its own message around it.
type EntryError struct {
	Field string // "name", "timezone", "weekly" or "except"
	Index int    // the entry's index in weekly or except; -1 for name and timezone
	Value string // the value as given
	Msg   string
}

func (e *EntryError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Msg)
	}
	return fmt.Sprintf("%s[%d] %q: %s", e.Field, e.Index, e.Value, e.Msg)
}

// Errors is every wrong value New found, in argument order, so that a
// config is fixed in one pass rather than one error per run. errors.As
// finds both Errors and its first *EntryError.
type Errors []*EntryError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As and errors.Is see each entry.
func (es Errors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}

// New parses a schedule. timezone is an IANA name (UTC included; "Local"
// is refused, since a schedule must not change with the host). weekly
// entries are "DAYS HH:MM-HH:MM": DAYS is a day (mon), a range (mon-fri;
// fri-mon wraps over the weekend) or a comma list of both (mon-wed,fri);
// times run from 00:00 to 24:00, an end not after the start crosses
// midnight, and windows may overlap. except entries are dates
// (2026-12-25) or ranges of dates (2026-12-24..2026-12-26, ends included).
// Having no windows is allowed: such a schedule never opens. The error, if
// any, is Errors.
func New(name, timezone string, weekly, except []string) (*Schedule, error) {
	var errs Errors
	bad := func(field string, i int, value, format string, args ...any) {
		errs = append(errs, &EntryError{Field: field, Index: i, Value: value, Msg: fmt.Sprintf(format, args...)})
	}
	s := &Schedule{name: name}
	if strings.TrimSpace(name) == "" {
		bad("name", -1, name, "a schedule needs a name")
	}
	switch loc, err := time.LoadLocation(timezone); {
	case timezone == "":
		bad("timezone", -1, timezone, "a schedule needs a time zone (an IANA name such as Europe/Berlin, or UTC)")
	case timezone == "Local":
		bad("timezone", -1, timezone, "the host's zone would change the schedule with the host; name the zone (an IANA name such as Europe/Berlin)")
	case err != nil:
		bad("timezone", -1, timezone, "unknown time zone (want an IANA name such as Europe/Berlin, or UTC)")
	default:
		s.loc = loc
	}
	for i, entry := range weekly {
		days, w, msg := parseWindow(entry)
		if msg != "" {
			bad("weekly", i, entry, "%s", msg)
			continue
		}
		for _, d := range days {
			s.byDay[d] = append(s.byDay[d], w)
		}
	}
	for i, entry := range except {
		r, msg := parseExcept(entry)
		if msg != "" {
			bad("except", i, entry, "%s", msg)
			continue
		}
		s.closed = append(s.closed, r)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	s.closed = mergeDays(s.closed)
	return s, nil
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

const wantDays = "want mon, tue, wed, thu, fri, sat, sun"

// parseWindow parses "DAYS HH:MM-HH:MM"; msg is why not.
func parseWindow(entry string) (days []time.Weekday, w window, msg string) {
	f := strings.Fields(entry)
	if len(f) != 2 {
		return nil, w, `want DAYS HH:MM-HH:MM, such as "mon-fri 09:00-18:00"`
	}
	days, msg = parseDays(f[0])
	if msg != "" {
		return nil, w, msg
	}
	from, to, ok := strings.Cut(f[1], "-")
	if !ok {
		return nil, w, fmt.Sprintf("times %q are not a range (want HH:MM-HH:MM)", f[1])
	}
	if w.start, msg = parseClock(from); msg != "" {
		return nil, w, msg
	}
	if w.end, msg = parseClock(to); msg != "" {
		return nil, w, msg
	}
	switch {
	case w.start == 24*60:
		return nil, w, "a window cannot start at 24:00, the end of the day (start the next day at 00:00)"
	case w.start == w.end:
		return nil, w, fmt.Sprintf("window %s is empty (for a whole day write 00:00-24:00)", f[1])
	}
	return days, w, ""
}

// parseDays parses "mon", "mon-fri", "fri-mon" or a comma list of them.
func parseDays(s string) ([]time.Weekday, string) {
	var days []time.Weekday
	for part := range strings.SplitSeq(s, ",") {
		if part == "" {
			return nil, fmt.Sprintf("empty day in %q", s)
		}
		a, b, isRange := strings.Cut(part, "-")
		from, msg := parseDay(a)
		if msg != "" {
			return nil, msg
		}
		if !isRange {
			days = append(days, from)
			continue
		}
		to, msg := parseDay(b)
		if msg != "" {
			return nil, msg
		}
		if from == to {
			// Both readings, one day and the whole week, are plausible.
			return nil, fmt.Sprintf("day range %q starts and ends on the same day (write %s alone, or a range over the whole week such as mon-sun)", part, a)
		}
		for d := from; ; d = (d + 1) % 7 {
			days = append(days, d)
			if d == to {
				break
			}
		}
	}
	return days, ""
}

func parseDay(s string) (time.Weekday, string) {
	if i := slices.Index(dayNames, strings.ToLower(s)); i >= 0 {
		return time.Weekday(i), ""
	}
	if s == "" {
		return 0, "a day range needs a day on both sides of -"
	}
	return 0, fmt.Sprintf("unknown day %q (%s)", s, wantDays)
}

// parseClock parses H:MM or HH:MM, 00:00 to 24:00, into minutes.
func parseClock(s string) (int, string) {
	bad := fmt.Sprintf("bad time %q (want HH:MM from 00:00 to 24:00)", s)
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || len(hh) < 1 || len(hh) > 2 || len(mm) != 2 || !digits(hh) || !digits(mm) {
		return 0, bad
	}
	h, _ := strconv.Atoi(hh)
	m, _ := strconv.Atoi(mm)
	if h > 24 || m > 59 || h == 24 && m != 0 {
		return 0, bad
	}
	return h*60 + m, ""
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseExcept parses "2026-12-25" or "2026-12-24..2026-12-26".
func parseExcept(entry string) (dayRange, string) {
	a, b, isRange := strings.Cut(entry, "..")
	from, msg := parseDate(a)
	if msg != "" {
		return dayRange{}, msg
	}
	if !isRange {
		return dayRange{from, from}, ""
	}
	to, msg := parseDate(b)
	if msg != "" {
		return dayRange{}, msg
	}
	if to < from {
		return dayRange{}, "the range ends before it starts"
	}
	return dayRange{from, to}, ""
}

func parseDate(s string) (day, string) {
	s = strings.TrimSpace(s)
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return 0, fmt.Sprintf("bad date %q (want YYYY-MM-DD, a real date)", s)
	}
	return dateDay(t.Date()), ""
}

// mergeDays sorts except ranges and joins those that overlap or touch, so
// that a lookup is one binary search.
func mergeDays(rs []dayRange) []dayRange {
	slices.SortFunc(rs, func(a, b dayRange) int { return cmp.Compare(a.from, b.from) })
	var out []dayRange
	for _, r := range rs {
		if n := len(out); n > 0 && r.from <= out[n-1].to+1 {
			out[n-1].to = max(out[n-1].to, r.to)
			continue
		}
		out = append(out, r)
	}
	return out
}

// Name is the schedule's name as given, which routes refer to.
func (s *Schedule) Name() string { return s.name }

// Location is the zone the windows and except dates are read in; results
// of NextOpen and NextClose are in it.
func (s *Schedule) Location() *time.Location { return s.loc }

// Open reports whether t is inside the schedule: in a window and not on
// an except day.
func (s *Schedule) Open(t time.Time) bool {
	d := s.dayOf(t)
	for _, sp := range s.spans(d-2, d+2) {
		if !sp.start.After(t) && sp.end.After(t) {
			return true
		}
	}
	return false
}

// NextOpen is when a delivery deferred at t is due: t itself if the
// schedule is open at t, else the earliest later instant at which it
// opens. It is the zero time if the schedule does not open within about
// two years (no windows, or all days excepted): never.
func (s *Schedule) NextOpen(t time.Time) time.Time {
	if s.empty() {
		return time.Time{}
	}
	d := s.dayOf(t)
	for _, last := range []day{d + 9, d + horizon} {
		// Windows of days after last start after limit, so a stretch
		// that starts before it cannot be preceded by one not generated.
		limit := s.at(last-1, 0)
		sps := s.spans(d-2, last)
		i := slices.IndexFunc(sps, func(sp span) bool { return sp.end.After(t) })
		switch {
		case i < 0:
			continue
		case !sps[i].start.After(t):
			return t
		case sps[i].start.Before(limit):
			return sps[i].start
		}
	}
	return time.Time{}
}

// NextClose is the end of the open stretch around t, overlapping and
// touching windows taken together: when a route that delivers only during
// the schedule stops. It is t itself if the schedule is closed at t, and
// the zero time if the schedule stays open for about two years (a window
// round the clock every day): never.
func (s *Schedule) NextClose(t time.Time) time.Time {
	d := s.dayOf(t)
	for _, last := range []day{d + 9, d + horizon} {
		// As in NextOpen: nothing generated after last can extend a
		// stretch that ends before limit.
		limit := s.at(last-1, 0)
		sps := s.spans(d-2, last)
		i := slices.IndexFunc(sps, func(sp span) bool { return sp.end.After(t) })
		switch {
		case i < 0 || sps[i].start.After(t):
			return t
		case sps[i].end.Before(limit):
			return sps[i].end
		}
	}
	return time.Time{}
}

// Describe says where the schedule stands at t, in the words the trial
// page shows next to a route: "open until 18:00 Europe/Berlin", "closed,
// opens Mon 09:00 Europe/Berlin". The weekday appears when the change is
// not on t's local day and the date when it is a week or more away.
func (s *Schedule) Describe(t time.Time) string {
	zone := s.loc.String()
	if s.Open(t) {
		c := s.NextClose(t)
		if c.IsZero() {
			return "open, not closing within two years " + zone
		}
		return "open until " + s.when(t, c) + " " + zone
	}
	o := s.NextOpen(t)
	if o.IsZero() {
		return "closed, not opening within two years " + zone
	}
	return "closed, opens " + s.when(t, o) + " " + zone
}

// when formats x, a change after t, as briefly as is unambiguous.
func (s *Schedule) when(t, x time.Time) string {
	x = x.In(s.loc)
	switch d := s.dayOf(x) - s.dayOf(t); {
	case d == 0:
		return x.Format("15:04")
	case d < 7:
		return x.Format("Mon 15:04")
	}
	return x.Format("Mon 2006-01-02 15:04")
}

func (s *Schedule) empty() bool {
	for _, ws := range s.byDay {
		if len(ws) > 0 {
			return false
		}
	}
	return true
}

// spans is the open time of the windows that start on days from to to
// (both included), except days cut out, sorted and merged.
func (s *Schedule) spans(from, to day) []span {
	var out []span
	for d := from; d <= to; d++ {
		if r, ok := s.closedRun(d); ok && r.to-d >= 2 {
			// A window lies within its day and the next, so nothing
			// of one that starts two days or more before the end of a
			// run of except days is left. The margin of a day is for
			// time.Date moving an end across midnight.
			d = min(r.to-1, to+1) - 1
			continue
		}
		for _, w := range s.byDay[d.weekday()] {
			endDay := d
			if w.end <= w.start {
				endDay = d + 1
			}
			sp := span{s.at(d, w.start), s.at(endDay, w.end)}
			if !sp.end.After(sp.start) {
				continue // a window in a daylight-saving gap
			}
			out = s.cut(out, sp, d-1, endDay+1)
		}
	}
	slices.SortFunc(out, func(a, b span) int { return a.start.Compare(b.start) })
	merged := out[:0]
	for _, sp := range out {
		if n := len(merged); n > 0 && !sp.start.After(merged[n-1].end) {
			if sp.end.After(merged[n-1].end) {
				merged[n-1].end = sp.end
			}
			continue
		}
		merged = append(merged, sp)
	}
	return merged
}

// cut appends to out what is left of sp once the except days among from
// to to are taken out of it. The days are a margin wider than sp's
// calendar days, since time.Date may move an end across midnight.
func (s *Schedule) cut(out []span, sp span, from, to day) []span {
	pieces := []span{sp}
	for d := from; d <= to; d++ {
		if _, ok := s.closedRun(d); !ok {
			continue
		}
		lo, hi := s.at(d, 0), s.at(d+1, 0)
		var kept []span
		for _, p := range pieces {
			if p.start.Before(lo) {
				kept = append(kept, span{p.start, minTime(p.end, lo)})
			}
			if p.end.After(hi) {
				kept = append(kept, span{maxTime(p.start, hi), p.end})
			}
		}
		pieces = kept
	}
	return append(out, pieces...)
}

// closedRun is the run of except days d is in, if any.
func (s *Schedule) closedRun(d day) (dayRange, bool) {
	i, found := slices.BinarySearchFunc(s.closed, d, func(r dayRange, d day) int { return cmp.Compare(r.from, d) })
	if found {
		return s.closed[i], true
	}
	if i > 0 && s.closed[i-1].to >= d {
		return s.closed[i-1], true
	}
	return dayRange{}, false
}

// at is the instant of minute of day d in the schedule's zone, as
// time.Date reads it: min 1440 is the next midnight, and a wall time
// skipped or repeated by daylight saving gets time.Date's choice.
func (s *Schedule) at(d day, minute int) time.Time {
	y, m, dd := d.date()
	return time.Date(y, m, dd, 0, minute, 0, 0, s.loc)
}

// dayOf is t's local date.
func (s *Schedule) dayOf(t time.Time) day { return dateDay(t.In(s.loc).Date()) }

func dateDay(y int, m time.Month, d int) day {
	secs := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix()
	n := secs / 86400
	if secs%86400 < 0 {
		n--
	}
	return day(n)
}

func (d day) date() (int, time.Month, int) {
	return time.Unix(int64(d)*86400, 0).UTC().Date()
}

func (d day) weekday() time.Weekday {
	return time.Weekday(((int64(d)+4)%7 + 7) % 7) // 1970-01-01 was a Thursday
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
