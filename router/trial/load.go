package trial

import (
	"context"
	"fmt"
	"os"

	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/rules"
)

// LoadFile reads and loads the config at path, as Load does.
func LoadFile(path string, sinks config.SinkFactory) (*rules.Runtime, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Load(path, data, sinks, nil)
}

// Load compiles a config as rules.Load does, then runs the config's own
// tests: section against it. A config whose tests fail does not load:
// each failure is a config error at its test, so serve refuses it and a
// reload keeps the config before it. Whatever loads a config to serve or
// check it goes through here, not through rules.Load.
func Load(file string, data []byte, sinks config.SinkFactory, lookup func(string) (string, bool)) (*rules.Runtime, error) {
	rt, err := rules.Load(file, data, sinks, lookup)
	if err != nil {
		return nil, err
	}
	if err := configTestErrors(rt); err != nil {
		return nil, err
	}
	return rt, nil
}

// configTestErrors runs the config's tests and reports each failure as a
// config error at its test.
func configTestErrors(rt *rules.Runtime) error {
	if len(rt.Config.Tests) == 0 {
		return nil
	}
	tests, err := ConfigTests(rt)
	if err != nil {
		return err
	}
	var errs config.ConfigErrors
	for _, res := range RunTests(context.Background(), rt, tests) {
		for _, f := range res.Failures {
			e := &config.ConfigError{Pos: res.Test.Pos, Path: res.Test.Path, Msg: fmt.Sprintf("test %q failed: %s", res.Test.Name, oneLine(f))}
			if e.File == "" {
				e.File = rt.File
			}
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		errs.Sort()
		return errs
	}
	return nil
}
