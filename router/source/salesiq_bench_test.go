package source

import (
	"testing"
	"time"

	"github.com/hookroute/hookroute/bench/loadgen"
	"github.com/hookroute/hookroute/router"
)

// BenchmarkSalesIQView decodes the benchmark's 1.4 KB SalesIQ body into
// its event view: as ingest does (rules read Env), and as a delivery does
// once the view has left the cache (templates and the default body read
// Data).
func BenchmarkSalesIQView(b *testing.B) {
	in := &router.Incoming{Source: "salesiq", Body: loadgen.Body(1, 1), ReceivedAt: time.Now(),
		Headers: map[string]string{"content-type": "application/json", "x-siqsignature": "c2ln"}}
	for _, withData := range []bool{false, true} {
		name := "ingest"
		if withData {
			name = "delivery"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				v, err := (SalesIQ{}).Decode(in)
				if err != nil {
					b.Fatal(err)
				}
				if withData && v.Data() == nil {
					b.Fatal("no data")
				}
			}
		})
	}
}
