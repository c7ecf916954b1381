// Package verify authenticates inbound webhook requests before hookroute
// trusts a single byte of them.
//
// Each source in the config names one scheme: SalesIQ's RSA signature
// (x-siqsignature), GitHub's X-Hub-Signature-256, a generic HMAC-SHA256
// header, Standard Webhooks, or none. Verification runs over the raw request
// body exactly as received, because re-encoding JSON would change the bytes
// the sender signed; the ingest path therefore reads the body once (with a
// size cap), calls Verify, and only then decodes.
//
// Every scheme accepts more than one key or secret, so a sender can rotate
// credentials without a window in which its requests bounce: configure old
// and new together, switch the sender, then drop the old one.
//
// Failures are deliberately uninformative to the caller. The HTTP layer maps
// any error to one generic 401 (see ErrUnauthorized) so that a prober learns
// nothing about which check failed; the wrapped reason is for operators'
// logs and never contains secret material or the presented signature.
//
// The Sign* helpers exist so that `hookroute send` and tests can produce
// requests that the verifiers accept, without a second implementation of
// each scheme drifting out of sync with this one.
package verify
