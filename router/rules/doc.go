// Package rules turns a config file into a Runtime: sources compiled from
// their kinds, sinks built through the SinkFactory, rules whose when: is
// an expr program per source and whose routes are templates, checked
// against the typed view where there is one (compile.go, template.go).
// The config's own rule tests run at load (ruletest.go), and a config
// whose tests fail does not load.
//
// It also runs the rules without side effects: a trial shows which rules
// an event matches, why the others do not (explain.go), and the exact
// request each route's sink would make (trial.go, redact.go).
package rules
