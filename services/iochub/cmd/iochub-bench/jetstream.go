package main

// Phase 1: JetStream alone.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/natsjs"
)

// messages makes n event messages of the mix, as the gateway would publish them.
func messages(n int, seed uint64) ([]event.Event, []*nats.Msg) {
	g := eventgen.New(seed, fmt.Sprintf("bench%d-%d", seed, time.Now().UnixNano()))
	evs := make([]event.Event, n)
	msgs := make([]*nats.Msg, n)
	for i := range evs {
		evs[i] = g.Next()
		body, _ := json.Marshal(evs[i])
		msgs[i], _ = natsjs.EventMsg(evs[i], body)
	}
	return evs, msgs
}

func benchJetStream(o options) (pubRate, consRate float64, err error) {
	dir, err := os.MkdirTemp("", "iochub-bench-js")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	interval, always := syncSetting(o.natsSync)
	srv, err := natsjs.RunEmbedded(natsjs.EmbeddedConfig{StoreDir: dir, SyncInterval: interval, SyncAlways: always})
	if err != nil {
		return 0, 0, err
	}
	defer srv.Shutdown()
	nc, err := nats.Connect("", srv.HubOptions()...)
	if err != nil {
		return 0, 0, err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4000))
	ctx := context.Background()
	if err := natsjs.Declare(ctx, js, natsjs.StreamLimits{}); err != nil {
		return 0, 0, err
	}
	_, msgs := messages(o.rawEvents, 1)
	start := time.Now()
	for i := 0; i < len(msgs); i += 1000 {
		for _, out := range natsjs.PublishAll(ctx, js, msgs[i:min(i+1000, len(msgs))]) {
			if out.Err != nil {
				return 0, 0, out.Err
			}
		}
	}
	pubRate = float64(len(msgs)) / time.Since(start).Seconds()
	cons, err := js.Consumer(ctx, natsjs.EventsStream, natsjs.AggregatorConsumer)
	if err != nil {
		return 0, 0, err
	}
	start = time.Now()
	got := 0
	for got < len(msgs) {
		batch, err := cons.Fetch(5000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return 0, 0, err
		}
		for m := range batch.Messages() {
			_ = m.Ack()
			got++
		}
		if batch.Error() != nil && !errors.Is(batch.Error(), nats.ErrTimeout) {
			return 0, 0, batch.Error()
		}
	}
	consRate = float64(got) / time.Since(start).Seconds()
	return pubRate, consRate, nil
}
