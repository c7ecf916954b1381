// Package fakeapi holds in-memory fakes of the vendor APIs hookroute's
// sinks call, one file per vendor. Each fake is an http.Handler written
// from the vendor's documentation (paths, methods, auth checks, JSON
// bodies, realistic ids), stores what it was sent so that tests can assert
// on it, and takes a small fault script (Fail and the like). Fakes are safe
// for concurrent use; the sink tests and the end-to-end test of the binary
// serve them with net/http/httptest.
package fakeapi
