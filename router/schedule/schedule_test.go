package schedule

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	_ "time/tzdata" // the tests must not depend on the host's zoneinfo
)

// layout is how the tests write instants: local time with the offset, so
// that an expectation shows the offset a DST change gives it.
const layout = "2006-01-02 15:04 -0700"

func mustParse(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(layout, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustNew(t testing.TB, tz string, weekly, except []string) *Schedule {
	t.Helper()
	s, err := New("test", tz, weekly, except)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewErrors(t *testing.T) {
	business := []string{"mon-fri 09:00-18:00"}
	for _, tc := range []struct {
		name, tz       string
		weekly, except []string
		field          string
		index          int
		want           string
	}{
		{"x", "UTC", []string{"mon 09:00-10:00", "mon-fry 09:00-18:00"}, nil, "weekly", 1,
			`weekly[1] "mon-fry 09:00-18:00": unknown day "fry" (want mon, tue, wed, thu, fri, sat, sun)`},
		{"x", "UTC", []string{"Monday 09:00-10:00"}, nil, "weekly", 0,
			`weekly[0] "Monday 09:00-10:00": unknown day "Monday" (want mon, tue, wed, thu, fri, sat, sun)`},
		{"x", "UTC", []string{"mon09:00-18:00"}, nil, "weekly", 0,
			`weekly[0] "mon09:00-18:00": want DAYS HH:MM-HH:MM, such as "mon-fri 09:00-18:00"`},
		{"x", "UTC", []string{"mon 09:00-18:00 utc"}, nil, "weekly", 0,
			`weekly[0] "mon 09:00-18:00 utc": want DAYS HH:MM-HH:MM, such as "mon-fri 09:00-18:00"`},
		{"x", "UTC", []string{""}, nil, "weekly", 0,
			`weekly[0] "": want DAYS HH:MM-HH:MM, such as "mon-fri 09:00-18:00"`},
		{"x", "UTC", []string{"mon 09:00"}, nil, "weekly", 0,
			`weekly[0] "mon 09:00": times "09:00" are not a range (want HH:MM-HH:MM)`},
		{"x", "UTC", []string{"mon 9-18"}, nil, "weekly", 0,
			`weekly[0] "mon 9-18": bad time "9" (want HH:MM from 00:00 to 24:00)`},
		{"x", "UTC", []string{"mon 09:00-18:60"}, nil, "weekly", 0,
			`weekly[0] "mon 09:00-18:60": bad time "18:60" (want HH:MM from 00:00 to 24:00)`},
		{"x", "UTC", []string{"mon 25:00-26:00"}, nil, "weekly", 0,
			`weekly[0] "mon 25:00-26:00": bad time "25:00" (want HH:MM from 00:00 to 24:00)`},
		{"x", "UTC", []string{"mon 22:00-24:30"}, nil, "weekly", 0,
			`weekly[0] "mon 22:00-24:30": bad time "24:30" (want HH:MM from 00:00 to 24:00)`},
		{"x", "UTC", []string{"mon 22:00-+1:00"}, nil, "weekly", 0,
			`weekly[0] "mon 22:00-+1:00": bad time "+1:00" (want HH:MM from 00:00 to 24:00)`},
		{"x", "UTC", []string{"mon 09:00-09:00"}, nil, "weekly", 0,
			`weekly[0] "mon 09:00-09:00": window 09:00-09:00 is empty (for a whole day write 00:00-24:00)`},
		{"x", "UTC", []string{"mon 24:00-02:00"}, nil, "weekly", 0,
			`weekly[0] "mon 24:00-02:00": a window cannot start at 24:00, the end of the day (start the next day at 00:00)`},
		{"x", "UTC", []string{"mon,,fri 09:00-10:00"}, nil, "weekly", 0,
			`weekly[0] "mon,,fri 09:00-10:00": empty day in "mon,,fri"`},
		{"x", "UTC", []string{"mon- 09:00-10:00"}, nil, "weekly", 0,
			`weekly[0] "mon- 09:00-10:00": a day range needs a day on both sides of -`},
		{"x", "UTC", []string{"mon-mon 09:00-10:00"}, nil, "weekly", 0,
			`weekly[0] "mon-mon 09:00-10:00": day range "mon-mon" starts and ends on the same day (write mon alone, or a range over the whole week such as mon-sun)`},
		{"x", "UTC", business, []string{"2026-12-25", "2026-13-01"}, "except", 1,
			`except[1] "2026-13-01": bad date "2026-13-01" (want YYYY-MM-DD, a real date)`},
		{"x", "UTC", business, []string{"2026-02-30"}, "except", 0,
			`except[0] "2026-02-30": bad date "2026-02-30" (want YYYY-MM-DD, a real date)`},
		{"x", "UTC", business, []string{"25.12.2026"}, "except", 0,
			`except[0] "25.12.2026": bad date "25.12.2026" (want YYYY-MM-DD, a real date)`},
		{"x", "UTC", business, []string{"2026-12-26..2026-12-24"}, "except", 0,
			`except[0] "2026-12-26..2026-12-24": the range ends before it starts`},
		{"x", "UTC", business, []string{"2026-12-24.."}, "except", 0,
			`except[0] "2026-12-24..": bad date "" (want YYYY-MM-DD, a real date)`},
		{"x", "Europe/Berln", business, nil, "timezone", -1,
			`timezone "Europe/Berln": unknown time zone (want an IANA name such as Europe/Berlin, or UTC)`},
		{"x", "", business, nil, "timezone", -1,
			`timezone "": a schedule needs a time zone (an IANA name such as Europe/Berlin, or UTC)`},
		{"x", "Local", business, nil, "timezone", -1,
			`timezone "Local": the host's zone would change the schedule with the host; name the zone (an IANA name such as Europe/Berlin)`},
		{" ", "UTC", business, nil, "name", -1,
			`name " ": a schedule needs a name`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			s, err := New(tc.name, tc.tz, tc.weekly, tc.except)
			if s != nil || err == nil {
				t.Fatalf("New = %v, %v; want an error", s, err)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %s\nwant %s", err, tc.want)
			}
			var e *EntryError
			if !errors.As(err, &e) {
				t.Fatalf("%T is not an *EntryError", err)
			}
			if e.Field != tc.field || e.Index != tc.index {
				t.Errorf("error at %s[%d], want %s[%d]", e.Field, e.Index, tc.field, tc.index)
			}
		})
	}
}

// TestNewReportsEveryError: a config is fixed in one pass.
func TestNewReportsEveryError(t *testing.T) {
	_, err := New("", "Mars/Olympus", []string{"mon 09:00-18:00", "xyz 09:00-10:00", "tue 9:00-10:00", "wed 10:00-10:00"}, []string{"2026-12-25", "soon"})
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("%T is not Errors", err)
	}
	var got []string
	for _, e := range es {
		got = append(got, fmt.Sprintf("%s[%d]", e.Field, e.Index))
	}
	if want := []string{"name[-1]", "timezone[-1]", "weekly[1]", "weekly[3]", "except[1]"}; !slices.Equal(got, want) {
		t.Errorf("errors at %v, want %v\n%s", got, want, err)
	}
}

func TestNewAccepts(t *testing.T) {
	for _, w := range []string{
		"mon-fri 09:00-18:00", "  Mon-FRI\t09:00-18:00 ", "fri-mon 9:00-17:00", "mon-wed,fri 00:00-24:00",
		"sun,sat 22:00-00:00", "sat 23:59-00:01", "sun-sat 00:00-00:01",
	} {
		if _, err := New("x", "UTC", []string{w}, []string{"2026-12-25", " 2026-12-24 .. 2026-12-26 ", "2026-12-31..2026-12-31"}); err != nil {
			t.Errorf("New with %q: %v", w, err)
		}
	}
	s := mustNew(t, "Asia/Kolkata", nil, nil)
	if s.Name() != "test" || s.Location().String() != "Asia/Kolkata" {
		t.Errorf("Name, Location = %q, %v", s.Name(), s.Location())
	}
}

// check is one instant of a schedule: whether it is open there and when
// that changes, "never" for the zero time.
type check struct {
	at   string
	open bool
	next string
}

func TestOpenNextOpenNextClose(t *testing.T) {
	business := []string{"mon-fri 09:00-18:00"}
	for _, tc := range []struct {
		name           string
		tz             string
		weekly, except []string
		checks         []check
	}{
		{"plain weekday", "Europe/Berlin", business, nil, []check{
			{"2026-06-01 10:00 +0200", true, "2026-06-01 18:00 +0200"},
			{"2026-06-01 09:00 +0200", true, "2026-06-01 18:00 +0200"},
			{"2026-06-01 08:59 +0200", false, "2026-06-01 09:00 +0200"},
			{"2026-06-01 17:59 +0200", true, "2026-06-01 18:00 +0200"},
			{"2026-06-01 18:00 +0200", false, "2026-06-02 09:00 +0200"},
			{"2026-06-01 07:00 +0000", true, "2026-06-01 18:00 +0200"}, // the same instant elsewhere
			{"2026-06-01 06:59 +0000", false, "2026-06-01 09:00 +0200"},
		}},
		{"the weekend", "Europe/Berlin", business, nil, []check{
			{"2026-06-05 18:30 +0200", false, "2026-06-08 09:00 +0200"},
			{"2026-06-06 12:00 +0200", false, "2026-06-08 09:00 +0200"},
			{"2026-06-07 23:59 +0200", false, "2026-06-08 09:00 +0200"},
		}},
		{"a window across midnight", "UTC", []string{"fri 22:00-02:00"}, nil, []check{
			{"2026-06-05 21:59 +0000", false, "2026-06-05 22:00 +0000"},
			{"2026-06-05 23:00 +0000", true, "2026-06-06 02:00 +0000"},
			{"2026-06-06 01:59 +0000", true, "2026-06-06 02:00 +0000"},
			{"2026-06-06 02:00 +0000", false, "2026-06-12 22:00 +0000"},
			{"2026-06-04 23:00 +0000", false, "2026-06-05 22:00 +0000"},
		}},
		{"a window across the end of the week", "UTC", []string{"sun 23:00-01:00"}, nil, []check{
			{"2026-06-07 23:30 +0000", true, "2026-06-08 01:00 +0000"},
			{"2026-06-08 00:30 +0000", true, "2026-06-08 01:00 +0000"},
			{"2026-06-08 01:00 +0000", false, "2026-06-14 23:00 +0000"},
		}},
		{"a day range over the weekend", "UTC", []string{"fri-mon 10:00-12:00"}, nil, []check{
			{"2026-06-04 13:00 +0000", false, "2026-06-05 10:00 +0000"},
			{"2026-06-06 11:00 +0000", true, "2026-06-06 12:00 +0000"},
			{"2026-06-07 11:00 +0000", true, "2026-06-07 12:00 +0000"},
			{"2026-06-08 11:00 +0000", true, "2026-06-08 12:00 +0000"},
			{"2026-06-08 12:00 +0000", false, "2026-06-12 10:00 +0000"},
		}},
		{"a day list with a range", "UTC", []string{"mon-wed,fri 08:00-09:00"}, nil, []check{
			{"2026-06-03 08:30 +0000", true, "2026-06-03 09:00 +0000"},
			{"2026-06-03 09:00 +0000", false, "2026-06-05 08:00 +0000"},
		}},
		{"overlapping and touching windows are one stretch", "UTC",
			[]string{"mon 14:00-15:00", "mon 09:00-12:00", "mon 11:00-14:00", "mon 10:00-11:00"}, nil, []check{
				{"2026-06-01 09:30 +0000", true, "2026-06-01 15:00 +0000"},
				{"2026-06-01 14:30 +0000", true, "2026-06-01 15:00 +0000"},
				{"2026-06-01 15:00 +0000", false, "2026-06-08 09:00 +0000"},
			}},
		{"24:00 ends the day", "UTC", []string{"sat 20:00-24:00"}, nil, []check{
			{"2026-06-06 23:59 +0000", true, "2026-06-07 00:00 +0000"},
			{"2026-06-07 00:00 +0000", false, "2026-06-13 20:00 +0000"},
		}},
		{"24:00 touching the next day's 00:00", "UTC", []string{"mon 00:00-24:00", "tue 00:00-12:00"}, nil, []check{
			{"2026-06-01 10:00 +0000", true, "2026-06-02 12:00 +0000"},
			{"2026-06-02 11:00 +0000", true, "2026-06-02 12:00 +0000"},
			{"2026-05-31 23:59 +0000", false, "2026-06-01 00:00 +0000"},
		}},
		{"open round the clock", "UTC", []string{"mon-sun 00:00-24:00"}, nil, []check{
			{"2026-06-01 10:00 +0000", true, "never"},
		}},
		{"a holiday", "Europe/Berlin", business, []string{"2026-12-25"}, []check{
			{"2026-12-24 17:00 +0100", true, "2026-12-24 18:00 +0100"},
			{"2026-12-24 18:00 +0100", false, "2026-12-28 09:00 +0100"},
			{"2026-12-25 10:00 +0100", false, "2026-12-28 09:00 +0100"},
			{"2026-12-25 00:00 +0100", false, "2026-12-28 09:00 +0100"},
		}},
		{"holiday ranges", "Europe/Berlin", business, []string{"2026-12-31..2027-01-01", "2026-12-24..2026-12-26"}, []check{
			{"2026-12-23 18:00 +0100", false, "2026-12-28 09:00 +0100"},
			{"2026-12-24 10:00 +0100", false, "2026-12-28 09:00 +0100"},
			{"2026-12-30 17:00 +0100", true, "2026-12-30 18:00 +0100"},
			{"2026-12-30 18:00 +0100", false, "2027-01-04 09:00 +0100"},
		}},
		{"a holiday cuts the tail of the evening before", "UTC", []string{"fri 22:00-02:00"}, []string{"2026-06-06"}, []check{
			{"2026-06-05 23:00 +0000", true, "2026-06-06 00:00 +0000"},
			{"2026-06-06 00:30 +0000", false, "2026-06-12 22:00 +0000"},
		}},
		{"a holiday leaves the tail into the next day", "UTC", []string{"fri 22:00-02:00"}, []string{"2026-06-12"}, []check{
			{"2026-06-11 23:00 +0000", false, "2026-06-13 00:00 +0000"},
			{"2026-06-12 23:00 +0000", false, "2026-06-13 00:00 +0000"},
			{"2026-06-13 00:00 +0000", true, "2026-06-13 02:00 +0000"},
		}},
		{"a holiday inside a stretch of whole days", "UTC", []string{"mon-sun 00:00-24:00"}, []string{"2026-06-03"}, []check{
			{"2026-06-01 10:00 +0000", true, "2026-06-03 00:00 +0000"},
			{"2026-06-03 10:00 +0000", false, "2026-06-04 00:00 +0000"},
		}},
		{"Berlin spring-forward 2026-03-29", "Europe/Berlin", business, nil, []check{
			{"2026-03-27 19:00 +0100", false, "2026-03-30 09:00 +0200"},
			{"2026-03-30 09:00 +0200", true, "2026-03-30 18:00 +0200"},
		}},
		{"Berlin spring-forward: 9 wall hours on the day", "Europe/Berlin", []string{"mon-sun 09:00-18:00"}, nil, []check{
			{"2026-03-28 18:00 +0100", false, "2026-03-29 09:00 +0200"},
			{"2026-03-29 09:00 +0200", true, "2026-03-29 18:00 +0200"},
		}},
		{"Berlin spring-forward: a night window is 7 real hours", "Europe/Berlin", []string{"sat 22:00-06:00"}, nil, []check{
			{"2026-03-28 23:00 +0100", true, "2026-03-29 06:00 +0200"},
			{"2026-03-29 01:59 +0100", true, "2026-03-29 06:00 +0200"},
			{"2026-03-29 03:00 +0200", true, "2026-03-29 06:00 +0200"},
		}},
		{"Berlin spring-forward: a window ending in the gap", "Europe/Berlin", []string{"sun 01:30-02:30"}, nil, []check{
			// 02:30 does not exist; time.Date reads it as 03:30 CEST.
			{"2026-03-29 01:29 +0100", false, "2026-03-29 01:30 +0100"},
			{"2026-03-29 01:45 +0100", true, "2026-03-29 03:30 +0200"},
			{"2026-03-29 03:15 +0200", true, "2026-03-29 03:30 +0200"},
			{"2026-03-29 03:30 +0200", false, "2026-04-05 01:30 +0200"},
		}},
		{"Berlin spring-forward: a window in the gap is empty", "Europe/Berlin", []string{"sun 02:30-03:30"}, nil, []check{
			{"2026-03-29 01:00 +0100", false, "2026-04-05 02:30 +0200"},
			{"2026-03-29 03:15 +0200", false, "2026-04-05 02:30 +0200"},
			{"2026-03-22 02:45 +0100", true, "2026-03-22 03:30 +0100"},
		}},
		{"Berlin spring-forward: a window wholly in the gap moves with it", "Europe/Berlin", []string{"sun 02:00-02:30"}, nil, []check{
			{"2026-03-29 01:00 +0100", false, "2026-03-29 03:00 +0200"},
			{"2026-03-29 03:00 +0200", true, "2026-03-29 03:30 +0200"},
		}},
		{"Berlin fall-back 2026-10-25", "Europe/Berlin", business, nil, []check{
			{"2026-10-23 19:00 +0200", false, "2026-10-26 09:00 +0100"},
			{"2026-10-26 17:00 +0100", true, "2026-10-26 18:00 +0100"},
		}},
		{"Berlin fall-back: the repeated hour", "Europe/Berlin", []string{"sun 01:00-02:30"}, nil, []check{
			// 02:30 happens twice; time.Date picks the second (CET).
			{"2026-10-25 00:59 +0200", false, "2026-10-25 01:00 +0200"},
			{"2026-10-25 02:15 +0200", true, "2026-10-25 02:30 +0100"},
			{"2026-10-25 02:45 +0200", true, "2026-10-25 02:30 +0100"},
			{"2026-10-25 02:15 +0100", true, "2026-10-25 02:30 +0100"},
			{"2026-10-25 02:30 +0100", false, "2026-11-01 01:00 +0100"},
		}},
		{"New York spring-forward 2026-03-08", "America/New_York", []string{"mon-fri 09:00-17:00"}, nil, []check{
			{"2026-03-06 18:00 -0500", false, "2026-03-09 09:00 -0400"},
		}},
		{"New York spring-forward: a window in the gap", "America/New_York", []string{"sun 02:30-03:30"}, nil, []check{
			// 02:30 does not exist; time.Date reads it as 01:30 EST.
			{"2026-03-07 23:00 -0500", false, "2026-03-08 01:30 -0500"},
			{"2026-03-08 01:45 -0500", true, "2026-03-08 03:30 -0400"},
			{"2026-03-08 03:30 -0400", false, "2026-03-15 02:30 -0400"},
		}},
		{"New York fall-back 2026-11-01", "America/New_York", []string{"mon-fri 09:00-17:00"}, nil, []check{
			{"2026-10-30 18:00 -0400", false, "2026-11-02 09:00 -0500"},
		}},
		{"New York fall-back: the repeated hour", "America/New_York", []string{"sun 01:00-02:30"}, nil, []check{
			// 01:00 happens twice; time.Date picks the first (EDT).
			{"2026-11-01 00:30 -0400", false, "2026-11-01 01:00 -0400"},
			{"2026-11-01 01:30 -0400", true, "2026-11-01 02:30 -0500"},
			{"2026-11-01 01:30 -0500", true, "2026-11-01 02:30 -0500"},
			{"2026-11-01 02:30 -0500", false, "2026-11-08 01:00 -0500"},
		}},
		{"a 30-minute offset", "Asia/Kolkata", []string{"mon-fri 09:00-17:30"}, nil, []check{
			{"2026-06-01 03:29 +0000", false, "2026-06-01 09:00 +0530"},
			{"2026-06-01 03:30 +0000", true, "2026-06-01 17:30 +0530"},
			{"2026-06-01 11:59 +0000", true, "2026-06-01 17:30 +0530"},
			{"2026-06-01 12:00 +0000", false, "2026-06-02 09:00 +0530"},
			{"2026-06-05 12:00 +0000", false, "2026-06-08 09:00 +0530"},
		}},
		{"no windows", "Europe/Berlin", nil, nil, []check{
			{"2026-06-01 10:00 +0200", false, "never"},
		}},
		{"every day excepted beyond the horizon", "Europe/Berlin", []string{"mon-sun 00:00-24:00"}, []string{"2026-01-01..2029-12-31"}, []check{
			{"2026-06-01 10:00 +0200", false, "never"},
		}},
		{"a year excepted is within the horizon", "Europe/Berlin", business, []string{"2026-01-01..2026-12-31"}, []check{
			{"2026-06-01 10:00 +0200", false, "2027-01-01 09:00 +0100"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustNew(t, tc.tz, tc.weekly, tc.except)
			for _, c := range tc.checks {
				at := mustParse(t, c.at)
				if got := s.Open(at); got != c.open {
					t.Errorf("Open(%s) = %v, want %v", c.at, got, c.open)
				}
				no, nc := s.NextOpen(at), s.NextClose(at)
				next := no
				if c.open {
					next = nc
					if !no.Equal(at) {
						t.Errorf("open at %s, but NextOpen = %s", c.at, format(s, no))
					}
				} else if !nc.Equal(at) {
					t.Errorf("closed at %s, but NextClose = %s", c.at, format(s, nc))
				}
				if got := format(s, next); got != c.next {
					t.Errorf("at %s (open %v) the next change is %s, want %s", c.at, c.open, got, c.next)
				}
			}
		})
	}
}

func format(s *Schedule, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.In(s.Location()).Format(layout)
}

func TestDescribe(t *testing.T) {
	business := []string{"mon-fri 09:00-18:00"}
	for _, tc := range []struct {
		tz             string
		weekly, except []string
		at, want       string
	}{
		{"Europe/Berlin", business, nil, "2026-06-01 10:00 +0200", "open until 18:00 Europe/Berlin"},
		{"Europe/Berlin", business, nil, "2026-06-01 08:00 +0200", "closed, opens 09:00 Europe/Berlin"},
		{"Europe/Berlin", business, nil, "2026-06-05 18:30 +0200", "closed, opens Mon 09:00 Europe/Berlin"},
		{"Europe/Berlin", business, nil, "2026-06-05 16:30 +0000", "closed, opens Mon 09:00 Europe/Berlin"},
		{"UTC", []string{"fri 22:00-02:00"}, nil, "2026-06-05 23:00 +0000", "open until Sat 02:00 UTC"},
		{"Europe/Berlin", business, []string{"2026-12-24..2026-12-26"}, "2026-12-23 18:00 +0100", "closed, opens Mon 09:00 Europe/Berlin"},
		{"Europe/Berlin", business, []string{"2026-01-01..2026-12-31"}, "2026-06-01 10:00 +0200", "closed, opens Fri 2027-01-01 09:00 Europe/Berlin"},
		{"Europe/Berlin", nil, nil, "2026-06-01 10:00 +0200", "closed, not opening within two years Europe/Berlin"},
		{"UTC", []string{"mon-sun 00:00-24:00"}, nil, "2026-06-01 10:00 +0000", "open, not closing within two years UTC"},
	} {
		s := mustNew(t, tc.tz, tc.weekly, tc.except)
		if got := s.Describe(mustParse(t, tc.at)); got != tc.want {
			t.Errorf("%s %v except %v: Describe(%s) = %q, want %q", tc.tz, tc.weekly, tc.except, tc.at, got, tc.want)
		}
	}
}

// TestWalk steps through days around DST changes a minute at a time and
// checks that NextOpen and NextClose name exactly the minutes where Open
// changes (every window boundary is on a whole minute).
func TestWalk(t *testing.T) {
	for _, tc := range []struct {
		tz             string
		weekly, except []string
		from           string
	}{
		{"Europe/Berlin", []string{"mon-fri 09:00-18:00", "sat 22:00-06:00", "sun 01:30-02:30", "sun 02:45-03:15"}, []string{"2026-03-27"}, "2026-03-26 00:00 +0100"},
		{"Europe/Berlin", []string{"sun 01:00-02:30", "fri-sun 23:00-01:00"}, nil, "2026-10-22 00:00 +0200"},
		{"America/New_York", []string{"sun 02:30-03:30", "sat 23:00-01:30", "mon 00:00-24:00"}, nil, "2026-03-05 00:00 -0500"},
		{"America/New_York", []string{"sun 01:00-02:30", "sun 05:00-04:00"}, []string{"2026-11-03"}, "2026-10-29 00:00 -0400"},
		{"Asia/Kolkata", []string{"mon-fri 09:00-17:30", "wed 17:00-02:00"}, []string{"2026-06-04"}, "2026-06-01 00:00 +0530"},
	} {
		s := mustNew(t, tc.tz, tc.weekly, tc.except)
		from := mustParse(t, tc.from)
		const n = 8 * 24 * 60
		open := make([]bool, n)
		for i := range open {
			open[i] = s.Open(from.Add(time.Duration(i) * time.Minute))
		}
		next := n // the first minute from i on where open differs from open[i]
		for i := n - 1; i >= 0; i-- {
			if i+1 < n && open[i+1] != open[i] {
				next = i + 1
			}
			at := from.Add(time.Duration(i) * time.Minute)
			no, nc := s.NextOpen(at), s.NextClose(at)
			want := from.Add(time.Duration(next) * time.Minute)
			got, other := no, nc
			if open[i] {
				got, other = nc, no
			}
			if !other.Equal(at) {
				t.Fatalf("%s %v: at %s (open %v) the other of NextOpen/NextClose is %s, want the instant itself", tc.tz, tc.weekly, format(s, at), open[i], format(s, other))
			}
			if next < n && !got.Equal(want) || next == n && !got.IsZero() && got.Before(want) {
				t.Fatalf("%s %v: at %s (open %v) the next change is %s, the walk says %s", tc.tz, tc.weekly, format(s, at), open[i], format(s, got), format(s, want))
			}
		}
	}
}

var fuzzZones = []string{
	"UTC", "Asia/Kolkata", // fixed offsets: checked against wall clock too
	"Europe/Berlin", "America/New_York", "Europe/London", "Australia/Lord_Howe", // 30-minute DST
	"America/Santiago", "Asia/Beirut", "America/Havana", // DST at midnight
	"Pacific/Apia", // skipped 2011-12-30
	"Africa/Casablanca", "Pacific/Chatham", "America/St_Johns", "Asia/Tehran",
}

var fuzzMinutes = []int{0, 30, 60, 90, 120, 150, 180, 210, 240, 540, 1080, 1380, 1410, 1439, 1440}

// byteReader hands out the fuzzer's bytes, then zeros.
type byteReader []byte

func (r *byteReader) next() int {
	if len(*r) == 0 {
		return 0
	}
	c := (*r)[0]
	*r = (*r)[1:]
	return int(c)
}

// fuzzSchedule builds a schedule from spec around the instant at: zone,
// up to four windows and up to three except ranges near at.
func fuzzSchedule(t *testing.T, spec []byte, at time.Time) (*Schedule, []string, []string) {
	r := byteReader(spec)
	tz := fuzzZones[r.next()%len(fuzzZones)]
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatal(err)
	}
	minute := func() int {
		v := r.next()
		if v < 128 {
			return fuzzMinutes[v%len(fuzzMinutes)]
		}
		return (v<<8 | r.next()) % 1441
	}
	var weekly []string
	for range r.next() % 5 {
		a, b := r.next()%7, r.next()%7
		days := dayNames[a]
		switch r.next() % 3 {
		case 1:
			if a == b {
				b = (a + 6) % 7
			}
			days += "-" + dayNames[b]
		case 2:
			days += "," + dayNames[b]
		}
		start, end := minute(), minute()
		w := fmt.Sprintf("%s %02d:%02d-%02d:%02d", days, start/60, start%60, end/60, end%60)
		if start == 24*60 || start == end {
			var e *EntryError
			if _, err := New("f", tz, []string{w}, nil); !errors.As(err, &e) {
				t.Fatalf("New accepts %q: %v", w, err)
			}
			continue
		}
		weekly = append(weekly, w)
	}
	var except []string
	y, m, d := at.In(loc).Date()
	for range r.next() % 4 {
		from := d + r.next()%24 - 4
		to := from + r.next()%8
		except = append(except, time.Date(y, m, from, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)+".."+
			time.Date(y, m, to, 0, 0, 0, 0, time.UTC).Format(time.DateOnly))
	}
	s, err := New("f", tz, weekly, except)
	if err != nil {
		t.Fatalf("New(%q, %q, %q): %v", tz, weekly, except, err)
	}
	return s, weekly, except
}

// wallOpen is Open read off the wall clock, for zones without DST, where
// every wall time is one instant.
func wallOpen(s *Schedule, weekly, except []string, t time.Time) bool {
	lt := t.In(s.loc)
	if _, ok := s.closedRun(dateDay(lt.Date())); ok {
		return false
	}
	sec := lt.Hour()*3600 + lt.Minute()*60 + lt.Second()
	today, yesterday := lt.Weekday(), (lt.Weekday()+6)%7
	for _, w := range weekly {
		days, win, _ := parseWindow(w)
		crosses := win.end <= win.start
		if slices.Contains(days, today) && sec >= win.start*60 && (crosses || sec < win.end*60) {
			return true
		}
		if slices.Contains(days, yesterday) && crosses && sec < win.end*60 {
			return true
		}
	}
	return false
}

// FuzzNextOpen checks the invariants that deferral relies on over random
// schedules and instants: NextOpen is not before t and is open; nothing
// between t and it is open (at sampled points); the stretch it starts
// has a later end, with nothing closed in between; and, where the zone
// has no DST, Open agrees with the wall clock.
func FuzzNextOpen(f *testing.F) {
	berlinSpring := time.Date(2026, 3, 28, 20, 0, 0, 0, time.UTC).UnixNano()
	f.Add([]byte{2, 2, 0, 0, 0, 0, 5, 0, 3, 6, 0, 1, 4, 8}, berlinSpring)
	f.Add([]byte{2, 1, 0, 0, 0, 2, 4}, berlinSpring)
	f.Add([]byte{3, 1, 0, 0, 0, 1, 3}, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	f.Add([]byte{1, 3, 1, 5, 1, 8, 13, 5, 0, 0, 200, 7, 14, 2, 4, 3, 2, 4}, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	f.Add([]byte{0, 1, 5, 1, 0, 12, 2, 1, 6, 3}, int64(0))
	f.Add([]byte{9, 2, 0, 6, 1, 0, 14, 4, 2, 0, 9, 10}, time.Date(2011, 12, 28, 0, 0, 0, 0, time.UTC).UnixNano())
	f.Add([]byte{6, 2, 6, 0, 0, 0, 3, 3, 1, 5, 9, 14}, time.Date(2026, 9, 5, 0, 0, 0, 0, time.UTC).UnixNano())
	f.Add([]byte{5, 1, 0, 0, 0, 0, 14, 1, 4, 7}, time.Date(2026, 4, 4, 0, 0, 0, 0, time.UTC).UnixNano())
	f.Fuzz(func(t *testing.T, spec []byte, ns int64) {
		// Instants from 2000 to 2040: real zone rules, no overflow.
		const span = int64(40 * 365.25 * 24 * time.Hour)
		at := time.Unix(0, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()+(ns%span+span)%span)
		s, weekly, except := fuzzSchedule(t, spec, at)
		rng := rand.New(rand.NewPCG(uint64(ns), uint64(len(spec))))
		desc := fmt.Sprintf("%s %q except %q", s.loc, weekly, except)

		fixed := s.loc.String() == "UTC" || s.loc.String() == "Asia/Kolkata"
		openAt := func(x time.Time) bool {
			o := s.Open(x)
			if fixed && o != wallOpen(s, weekly, except, x) {
				t.Fatalf("%s: Open(%s) = %v, the wall clock says %v", desc, format(s, x), o, !o)
			}
			return o
		}
		// samples are points of [a, b): spread evenly, at random, and
		// just before b, where an off-by-one would show.
		samples := func(a, b time.Time) []time.Time {
			d := b.Sub(a)
			ps := []time.Time{a}
			for _, back := range []time.Duration{time.Nanosecond, time.Second, time.Minute, time.Hour} {
				if back <= d {
					ps = append(ps, b.Add(-back))
				}
			}
			for i := range int64(48) {
				ps = append(ps, a.Add(time.Duration(int64(d)/48*i)))
				ps = append(ps, a.Add(time.Duration(rng.Int64N(int64(d)))))
			}
			return ps
		}

		no := s.NextOpen(at)
		open := openAt(at)
		switch {
		case open && !no.Equal(at):
			t.Fatalf("%s: open at %s but NextOpen = %s", desc, format(s, at), format(s, no))
		case !open && no.IsZero():
			if len(weekly) > 0 {
				t.Fatalf("%s: windows, a few except days, but never open after %s", desc, format(s, at))
			}
			return
		case !open && !no.After(at):
			t.Fatalf("%s: closed at %s but NextOpen = %s", desc, format(s, at), format(s, no))
		case !open && !s.NextClose(at).Equal(at):
			t.Fatalf("%s: closed at %s but NextClose = %s", desc, format(s, at), format(s, s.NextClose(at)))
		}
		if !openAt(no) {
			t.Fatalf("%s: NextOpen(%s) = %s, which is closed", desc, format(s, at), format(s, no))
		}
		if !open {
			for _, p := range samples(at, no) {
				if openAt(p) {
					t.Fatalf("%s: NextOpen(%s) = %s, but %s is open", desc, format(s, at), format(s, no), format(s, p))
				}
			}
		}
		if !s.NextOpen(no).Equal(no) {
			t.Fatalf("%s: NextOpen(NextOpen(%s)) moved to %s", desc, format(s, at), format(s, s.NextOpen(no)))
		}

		nc := s.NextClose(no)
		if nc.IsZero() {
			return // open round the clock
		}
		if !nc.After(no) {
			t.Fatalf("%s: NextClose(%s) = %s, not after it", desc, format(s, no), format(s, nc))
		}
		if openAt(nc) {
			t.Fatalf("%s: NextClose(%s) = %s, which is open", desc, format(s, no), format(s, nc))
		}
		for i, p := range samples(no, nc) {
			if !openAt(p) {
				t.Fatalf("%s: NextClose(%s) = %s, but %s is closed", desc, format(s, no), format(s, nc), format(s, p))
			}
			if i%8 != 0 {
				continue
			}
			if c := s.NextClose(p); !c.Equal(nc) {
				t.Fatalf("%s: NextClose(%s) = %s but NextClose(%s) = %s, in the same stretch", desc, format(s, no), format(s, nc), format(s, p), format(s, c))
			}
		}
		if next := s.NextOpen(nc); !next.IsZero() && !next.After(nc) {
			t.Fatalf("%s: NextOpen(%s) = %s after a close", desc, format(s, nc), format(s, next))
		}
	})
}
