package dispatch

import (
	"sync"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/rules"
)

// viewCache keeps the views of recently ingested events, so that their
// deliveries, which usually follow within moments, do not decode the body
// again (the JSON decode is the largest cost of an attempt after the
// sink's own). It is bounded and evicts the oldest entry; a miss just
// decodes. Views are read-only once built, so deliveries share them.
//
// Each view is kept with the config it was decoded under and given out
// only under that same config: an ingest that decoded before a reload may
// put its view after the reload has cleared the cache, and a reload may
// change how its source decodes.
type viewCache struct {
	mu   sync.Mutex
	m    map[viewKey]cachedView
	ring []viewKey // insertion order, for eviction
	next int
}

type viewKey struct{ source, id string }

type cachedView struct {
	rt *rules.Runtime // the config the view was decoded under
	v  *router.View
}

// viewCacheSize bounds the cache: enough for the deliveries of a burst,
// small enough (a view is a few KiB) to stay out of the memory budget.
const viewCacheSize = 2048

func newViewCache() *viewCache {
	return &viewCache{m: make(map[viewKey]cachedView, viewCacheSize), ring: make([]viewKey, viewCacheSize)}
}

// get returns the view of the event decoded under rt, or nil.
func (c *viewCache) get(rt *rules.Runtime, source, id string) *router.View {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[viewKey{source, id}]; ok && e.rt == rt {
		return e.v
	}
	return nil
}

// put keeps v, decoded under rt.
func (c *viewCache) put(rt *rules.Runtime, source, id string, v *router.View) {
	k := viewKey{source, id}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok {
		return
	}
	if old := c.ring[c.next]; old != (viewKey{}) {
		delete(c.m, old)
	}
	c.ring[c.next] = k
	c.next = (c.next + 1) % len(c.ring)
	c.m[k] = cachedView{rt, v}
}

// clear empties the cache: after a reload its views are of no more use
// (get gives them out under their own config only), and memory is freed
// at once.
func (c *viewCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	clear(c.ring)
	c.next = 0
}
