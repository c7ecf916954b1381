package dispatch_test

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookroute/hookroute/router/admin"
	"github.com/hookroute/hookroute/router/dispatch"
)

// The trial API's tests are internal to dispatch, which router/admin
// imports: they reach the admin handler through this hook.
func init() {
	dispatch.AdminHandlerForTest = func(r *dispatch.Router) http.Handler {
		return admin.Handler(r, prometheus.NewRegistry())
	}
}
