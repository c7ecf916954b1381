package router

import "sync"

// viewCache keeps the views of recently ingested events, so that their
// deliveries, which usually follow within moments, do not decode the body
// again (the JSON decode is the largest cost of an attempt after the
// sink's own). It is bounded and evicts the oldest entry; a miss just
// decodes. Views are read-only once built, so deliveries share them.
type viewCache struct {
	mu   sync.Mutex
	m    map[viewKey]*View
	ring []viewKey // insertion order, for eviction
	next int
}

type viewKey struct{ source, id string }

// viewCacheSize bounds the cache: enough for the deliveries of a burst,
// small enough (a view is a few KiB) to stay out of the memory budget.
const viewCacheSize = 2048

func newViewCache() *viewCache {
	return &viewCache{m: make(map[viewKey]*View, viewCacheSize), ring: make([]viewKey, viewCacheSize)}
}

func (c *viewCache) get(source, id string) *View {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[viewKey{source, id}]
}

func (c *viewCache) put(source, id string, v *View) {
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
	c.m[k] = v
}

// clear empties the cache (a reload may change how bodies decode).
func (c *viewCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	clear(c.ring)
	c.next = 0
}
