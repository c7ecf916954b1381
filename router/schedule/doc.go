// Package schedule is the business hours of the config's schedules: list:
// a name, an IANA time zone, weekly windows ("mon-fri 09:00-18:00") and
// except dates (holidays). A route with during: only delivers inside its
// schedule and one with outside: only outside it; the engine defers a
// delivery that comes at the wrong time to NextOpen, the instant the
// schedule next opens.
//
// # The open set
//
// A schedule is the set of instants covered by its windows, minus the
// instants of its except days. Everything below follows from how a wall
// time becomes an instant, and that is always time.Date in the schedule's
// zone, never arithmetic on offsets:
//
//   - A window of day D runs from time.Date(D, start) to time.Date(D, end),
//     or to time.Date(D+1, end) when end is not after start (it crosses
//     midnight). 24:00 is time.Date's hour 24: the next midnight.
//   - An except day X closes [time.Date(X, 00:00), time.Date(X+1, 00:00)):
//     the local calendar day, whoever's window is in it. The tail of a
//     window that crosses into X from the day before is closed; the tail
//     of a window that starts on X and crosses into X+1 is open after
//     midnight, because X+1 is not excepted (except X+1 too to close it).
//   - Windows and pieces of windows that touch or overlap are one stretch:
//     NextClose gives the end of all of them, not of the first.
//
// # Daylight saving
//
// Windows are wall-clock times: 09:00-18:00 is 09:00 to 18:00 local on
// every day, whatever the offset, so a window that contains a transition
// is an hour shorter or longer in real time (sat 22:00-06:00 over Berlin's
// spring-forward night lasts 7 hours).
//
// A wall time that does not exist (skipped by a spring-forward) or exists
// twice (repeated by a fall-back) is whatever time.Date makes of it. Go
// does not promise which reading it picks; the current one depends on the
// side of UTC the zone is on, and the tests pin it so that a change in the
// time library shows up:
//
//   - East of UTC (Europe/Berlin) a skipped time moves forward by the gap:
//     on 2026-03-29 02:30 is 03:30 CEST, so 01:30-02:30 runs from 01:30 CET
//     to 03:30 CEST, 02:00-02:30 from 03:00 to 03:30 CEST, and 02:30-03:30
//     is empty that day (both ends read as 03:30). A repeated time is its
//     second occurrence: on 2026-10-25 01:00-02:30 runs from 01:00 CEST to
//     the later 02:30 (CET), both copies of 02:00-02:30 open.
//   - West of UTC (America/New_York) a skipped time moves back by the gap:
//     on 2026-03-08 02:30 is 01:30 EST, so 02:30-03:30 opens at 01:30 EST
//     and closes at 03:30 EDT. A repeated time is its first occurrence: on
//     2026-11-01 01:00-02:30 opens at the first 01:00 (EDT) and covers both
//     copies of 01:00-02:00.
//
// # Never
//
// Searches look two years and a week of local days ahead. A schedule that
// does not open in that time (no windows, or every day excepted) has NextOpen
// return the zero time, and one that does not close in it (open round the
// clock) has NextClose return the zero time: callers read zero as never.
package schedule
