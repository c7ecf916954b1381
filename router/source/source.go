package source

import (
	"maps"
	"net/http"
	"slices"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/verify"
)

// Adapter turns a verified body into the event view. Env is the value
// rules are compiled against: a typed struct (the SalesIQ view), so that a
// typo is a load error, or the generic map.
type Adapter interface {
	Env() any
	Decode(in *router.Incoming) (*router.View, error)
}

// Handshaker is an adapter that answers some verified requests itself,
// without storing them: a sender's check that the endpoint is its own
// (Slack's url_verification challenge). Handshake is called after the
// signature is verified and before decoding; ok is false for any request
// that is an event.
type Handshaker interface {
	Handshake(body []byte, h http.Header) (answer []byte, contentType string, ok bool)
}

// Kind is one source type: everything its type: value decides. Each
// kind is one file, source_NAME.go, whose init registers it; the rest of
// the router asks a source's kind and never names one, so adding a kind
// edits nothing else.
//
// A kind reaches the rest of the router only through SourceConfig,
// KeyError, the helpers in this file and, for a typed view, the adapter
// interface: little enough for the kinds to move to a package of their
// own.
type Kind struct {
	// Name is the kind's value of type: in the config.
	Name string
	// Keys are the config keys a source of the kind may set besides name,
	// type and path; any other is an error rather than silently ignored.
	Keys []string
	// Verifier builds a source's verifier from its config; key files are
	// read relative to dir, the config file's directory, so a config works
	// from any working directory. A *KeyError is reported at its key, any
	// other error at type:. A kind that verifies refuses a missing key or
	// an empty secret: an unverified endpoint must be asked for by writing
	// type: none.
	Verifier func(sc *config.SourceConfig, dir string) (verify.Verifier, error)
	// DefaultEvent is the event: expression of a generic source whose
	// config gives none, for senders that name their events in a known
	// place.
	DefaultEvent string
	// IDHeader is the header that carries the sender's own id of the
	// event, if the scheme has one; it is the event's id, ahead of the id:
	// expression, and server.drop_headers may not drop it.
	IDHeader string
	// SignsBodyOnly is set when the signature covers the body and nothing
	// else (no id, no time) while the event's id may come from what it
	// does not cover (IDHeader, an id: expression over the headers): a
	// captured request posted again under a new id would verify as a new
	// event, so the body's hash is a dedup key of its own. A kind whose ids
	// are made of the body, or that signs its id, leaves it unset.
	SignsBodyOnly bool
	// Sign signs body as the kind's sender would, for hookroute send;
	// keyFile is send's --key, for a kind that signs with a private key
	// the config does not hold. Nil when send cannot sign for the kind.
	Sign func(sc *config.SourceConfig, keyFile string, body []byte) (http.Header, error)
	// CannotSign is send's answer for a kind without Sign: why, and what
	// to use instead.
	CannotSign string
	// Warn, if set, lists what is allowed but risky in a source's config
	// (a salesiq source that trusts the demo key); check prints each, and
	// serve logs it. It is called only for a config whose verifier built.
	Warn func(sc *config.SourceConfig, dir string) []string

	// Typed builds the kind's own adapter: a typed event view, or a map
	// view decoded the kind's way (slack); nil gives the generic view
	// (the JSON payload, with event: and id: expressions).
	Typed func(sc *config.SourceConfig) Adapter
	// Samples are the embedded events a trial offers for a source of the
	// kind; nil offers the generic one.
	Samples func(sc *config.SourceConfig) []Sample
}

// kinds are the registered kinds by name.
var kinds = map[string]*Kind{}

// Register adds a kind; each kind's file calls it from init. Two
// kinds of one name are a programming mistake that must not depend on
// which init ran last, so it panics, as does a kind without a name.
func Register(k *Kind) {
	if k.Name == "" {
		panic("router: Register: a source kind needs a name")
	}
	if _, dup := kinds[k.Name]; dup {
		panic("router: Register: source kind " + k.Name + " is registered twice")
	}
	kinds[k.Name] = k
}

// Kinds lists the names of the registered source kinds, sorted.
func Kinds() []string { return slices.Sorted(maps.Keys(kinds)) }

// Lookup returns the kind registered under name.
func Lookup(name string) (*Kind, bool) {
	k, ok := kinds[name]
	return k, ok
}

// KeyError is a problem with one key of a source's config, reported at
// that key's value.
type KeyError struct{ Key, Msg string }

func (e *KeyError) Error() string { return e.Key + ": " + e.Msg }

// sourceSecrets are the non-empty secrets of a source: secret: and, during
// a rotation, secrets:. None is an error, not an empty key: a MAC with an
// empty key is one anyone can compute.
func SourceSecrets(sc *config.SourceConfig) ([][]byte, error) {
	var out [][]byte
	for _, s := range append([]router.Secret{sc.Secret}, sc.Secrets...) {
		if s != "" {
			out = append(out, []byte(s.Reveal()))
		}
	}
	if len(out) == 0 {
		return nil, &KeyError{"secret", "a " + sc.Type + " source needs a secret (${NAME}); it is missing or empty"}
	}
	return out, nil
}

// signingSecret is the secret send signs with: secret:, or during a
// rotation that left it empty, the first of secrets:.
func SigningSecret(sc *config.SourceConfig) string {
	if s := sc.Secret.Reveal(); s != "" || len(sc.Secrets) == 0 {
		return s
	}
	return sc.Secrets[0].Reveal()
}

// Sample is an embedded event a trial offers for a source: its event
// name ("" when the source names it), a label, and its file under
// the engine's samples/.
type Sample struct{ Event, Label, File string }
