package router

import (
	"sync"
	"time"
)

// Incoming is a verified request, before decoding.
type Incoming struct {
	Source     string
	Headers    map[string]string // lower-cased names
	Body       []byte
	ReceivedAt time.Time
}

// View is an event as rules and templates see it (README: The event view).
type View struct {
	Name string // event name
	ID   string // dedup id
	// Env is the expr environment: a *SalesIQEvent for salesiq sources, the
	// Data() map for generic ones.
	Env any
	// Ignored, when set, says why the event matches no rule whatever the
	// rules say (a Slack bot's own message, a click from a user outside
	// allow_users). The event is stored, for the record, but makes no
	// delivery and cancels no timer. It is a field of the view, not of
	// its data, so that a sender's payload cannot set it.
	Ignored string

	data     map[string]any
	build    func() map[string]any // makes data on first use, when set
	dataOnce sync.Once
}

// Data is what templates see, and what the http sink sends by default.
// A SalesIQ view builds it on first use: rules run on Env, and at ingest
// the map (about a quarter of the decode's CPU and a third of its
// allocations) is needed only if a delivery later finds the view cached.
// Views are shared by deliveries, so this is safe for concurrent use.
func (v *View) Data() map[string]any {
	v.dataOnce.Do(func() {
		if v.build != nil {
			v.data, v.build = v.build(), nil
		}
	})
	return v.data
}

// NewView is a view whose template map is data, built already.
func NewView(name, id string, env any, data map[string]any) *View {
	return &View{Name: name, ID: id, Env: env, data: data}
}

// NewLazyView is a view whose template map is built by build on the first
// call of Data: a typed view's rules read Env, and most views never need
// the map.
func NewLazyView(name, id string, env any, build func() map[string]any) *View {
	return &View{Name: name, ID: id, Env: env, build: build}
}
