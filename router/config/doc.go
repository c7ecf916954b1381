// Package config is hookroute's config file: its types, strict YAML
// decoding with every error at its file, line and column, ${VAR}
// expansion (secrets only by reference), units (durations with days, byte
// sizes), and what the sinks package implements to be built from it
// (SinkFactory, Capturer).
package config
