package router

// Secret is a credential from the config: a token, a webhook URL, an HMAC
// secret. It prints as "<secret>" in every format so that logs, errors and
// API output cannot leak it; Reveal returns the value for the one place
// that needs it.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<secret>"
}

// GoString hides the value from %#v.
func (s Secret) GoString() string { return s.String() }

// MarshalJSON hides the value from JSON output.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalYAML hides the value from YAML output.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// UnmarshalText accepts the scalar as it is (YAML decoders call it for a
// scalar). Whether it came from ${VAR} is checked by the loader.
func (s *Secret) UnmarshalText(b []byte) error {
	*s = Secret(b)
	return nil
}
