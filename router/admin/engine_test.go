package admin_test

import (
	"github.com/hookroute/hookroute/router/admin"
	"github.com/hookroute/hookroute/router/dispatch"
)

// The router is the engine the admin API is built over.
var _ admin.Engine = (*dispatch.Router)(nil)
