package testenv

import "testing"

// recorder stands in for a test, to see what Require does with it.
type recorder struct {
	testing.TB
	skipped, failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Skip(...any)           { r.skipped = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }

func TestRequire(t *testing.T) {
	for _, tc := range []struct {
		ci, have      bool
		skip, failure bool
	}{
		{ci: false, have: true},
		{ci: true, have: true},
		{ci: false, have: false, skip: true},
		{ci: true, have: false, failure: true},
	} {
		if tc.ci {
			t.Setenv("CI", "true")
		} else {
			t.Setenv("CI", "")
		}
		r := &recorder{}
		Require(r, tc.have, "no database")
		if r.skipped != tc.skip || r.failed != tc.failure {
			t.Errorf("CI=%v have=%v: skipped %v, failed %v; want %v, %v", tc.ci, tc.have, r.skipped, r.failed, tc.skip, tc.failure)
		}
	}
}
