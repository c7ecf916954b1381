package router

import (
	"fmt"
	"testing"
)

// TestViewCacheKeepsViewsToTheirConfig: a view is given out only under
// the config it was decoded under, so a view decoded before a reload and
// put after it is never used with the new config.
func TestViewCacheKeepsViewsToTheirConfig(t *testing.T) {
	c := newViewCache()
	before, after := &Runtime{}, &Runtime{}
	v := &View{ID: "e1"}
	c.put(before, "siq", "e1", v)
	if got := c.get(before, "siq", "e1"); got != v {
		t.Fatalf("get under the same config = %v, want the view", got)
	}
	if got := c.get(after, "siq", "e1"); got != nil {
		t.Fatalf("get under a reloaded config = %v, want a miss", got)
	}
	c.clear()
	if got := c.get(before, "siq", "e1"); got != nil {
		t.Fatalf("get after clear = %v, want a miss", got)
	}
}

// TestViewCacheEvictsOldest: the cache holds viewCacheSize views and
// drops the oldest first.
func TestViewCacheEvictsOldest(t *testing.T) {
	c := newViewCache()
	rt := &Runtime{}
	for i := range viewCacheSize + 1 {
		c.put(rt, "siq", fmt.Sprint(i), &View{ID: fmt.Sprint(i)})
	}
	if got := c.get(rt, "siq", "0"); got != nil {
		t.Errorf("oldest view still cached: %v", got)
	}
	for _, id := range []string{"1", fmt.Sprint(viewCacheSize)} {
		if got := c.get(rt, "siq", id); got == nil || got.ID != id {
			t.Errorf("view %s = %v, want it cached", id, got)
		}
	}
	if len(c.m) != viewCacheSize {
		t.Errorf("cache holds %d views, want %d", len(c.m), viewCacheSize)
	}
}
