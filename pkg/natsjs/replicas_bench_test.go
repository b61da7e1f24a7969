package natsjs_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
)

// BenchmarkPublishReplicas: the gateway's publish (PublishAll, batches of
// 1,000 events with their identities) into IOC_EVENTS on a cluster of three
// nats-server processes on this machine, R1 against R3: what replication
// costs a publish (docs/scaling.md). The servers' CPU is not in the
// benchmark's ns/op: server-cpu-us/event is the three servers' CPU per
// event published.
func BenchmarkPublishReplicas(b *testing.B) {
	cl := natsjstest.RunCluster(b, 3)
	g := eventgen.New(1, "bench")
	msgs := make([]*nats.Msg, 1000)
	for _, replicas := range []int{1, 3} {
		b.Run(fmt.Sprintf("R%d", replicas), func(b *testing.B) {
			nc, _ := cl.Connect(b)
			js, err := natsjs.NewJetStream(nc, natsjs.WithReplicas(replicas))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for _, s := range []string{natsjs.EventsStream, natsjs.DLQStream, "IOC_AUDIT"} {
				_ = js.DeleteStream(ctx, s) // the other run's
			}
			if err := natsjs.Declare(ctx, js, natsjs.StreamLimits{EventsMaxBytes: 4 << 30, Replicas: replicas}); err != nil {
				b.Fatal(err)
			}
			cpu0 := cl.CPUSeconds()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for j := range msgs {
					e := g.Next()
					msgs[j], _ = natsjs.EventMsg(e, e.AppendJSON(nil))
				}
				b.StartTimer()
				for _, o := range natsjs.PublishAll(ctx, js, msgs) {
					if o.Err != nil {
						b.Fatal(o.Err)
					}
				}
			}
			b.ReportMetric(float64(b.N*len(msgs))/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric((cl.CPUSeconds()-cpu0)/float64(b.N*len(msgs))*1e6, "server-cpu-us/event")
		})
	}
}
