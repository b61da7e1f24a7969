package admit_test

import (
	"testing"

	"github.com/iochub/iochub/pkg/admit"
	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
)

// BenchmarkMsg encodes an admitted visit for IOC_EVENTS with and without
// the seal (sealed: an admitter holding the key); BenchmarkSealed verifies
// one, as the aggregator does for every event. Together: what the seal
// adds per event.
func BenchmarkMsg(b *testing.B) {
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		b.Fatal(err)
	}
	p, _ := pii.New([]byte("bench-pii-key-0123456789abcdef012345"))
	ad, err := admit.New(reg, p, 0).Clear(eventgen.New(1, "bench").Of("vn.ioc.health.visit.v1"))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		adm  *admit.Admitter
	}{{"unsealed", admit.New(reg, nil, 0)}, {"sealed", admit.New(reg, p, 0)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.adm.Msg(ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSealed(b *testing.B) {
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		b.Fatal(err)
	}
	p, _ := pii.New([]byte("bench-pii-key-0123456789abcdef012345"))
	adm := admit.New(reg, p, 0)
	ad, err := adm.Clear(eventgen.New(1, "bench").Of("vn.ioc.health.visit.v1"))
	if err != nil {
		b.Fatal(err)
	}
	m, _ := adm.Msg(ad)
	b.ReportAllocs()
	for b.Loop() {
		if !adm.Sealed(m.Subject, m.Header, m.Data) {
			b.Fatal("not sealed")
		}
	}
}
