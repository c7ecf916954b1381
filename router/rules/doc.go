// Package rules turns a config file into a Runtime: sources compiled from
// their kinds, sinks built through the SinkFactory, rules whose when: is
// an expr program per source and whose routes are templates, checked
// against the typed view where there is one (compile.go, template.go).
// Match runs the rules on an event; Explain says, comparison by
// comparison, why a rule matched or not (explain.go). Trial runs and the
// config's own tests are router/trial's.
package rules
