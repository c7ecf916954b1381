// Package source is the registry of source kinds: one file per kind
// (source_NAME.go) registers what its type: decides, from the config keys
// it takes to its verifier, its event view, the header its sender's own id
// comes in, its trial samples and how `hookroute send` signs for it.
// Adding a kind is one file and its test; nothing else names a kind.
//
// It also holds the event views themselves: the generic one (the JSON
// payload with event: and id: expressions) and the SalesIQ one, with its
// JSON decoder and the writer that makes the http sink's default body
// straight from the stored SalesIQ body.
package source
