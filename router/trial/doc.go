// Package trial runs rules without side effects: a trial shows which
// rules an event matches, why the others do not, and the exact request
// each route's sink would make, secrets redacted (trial.go, redact.go);
// rule tests check expectations against trials (ruletest.go), and a
// config's own tests: section runs when it loads (load.go), so a config
// whose tests fail does not load; samples.go offers the events a trial
// may start from.
package trial
