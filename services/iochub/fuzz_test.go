package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/gateway"
	"github.com/iochub/iochub/services/iochub/internal/hub"
)

// FuzzGatewayToClickHouse drives the gateway of a whole hub — real
// JetStream, the aggregator and ClickHouse behind it — with any body in any
// of the three modes. Whatever the input: no 5xx for a caller's input, an
// answer that is a response document, and nothing the gateway accepted is
// dead-lettered by the aggregator (a 202 means it will be stored). `make
// test` runs the seed corpus (every example, valid and invalid, whole and
// event by event); `go test -fuzz FuzzGatewayToClickHouse` explores.
func FuzzGatewayToClickHouse(f *testing.F) {
	dsn := chstoretest.NewDatabase(f)
	natsAddr := "127.0.0.1:" + freePort(f)
	base := startHubWith(f, dsn, func(c *hub.Config) { c.NATS.Listen = natsAddr })
	nc, err := nats.Connect(opsURL(natsAddr))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(nc.Close)
	js, _ := natsjs.NewJetStream(nc)
	dlqCount := func(t *testing.T) uint64 {
		s, err := js.Stream(context.Background(), natsjs.DLQStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	batches, events := schemas.ExampleBodies()
	for _, b := range batches {
		f.Add(uint8(0), b)
	}
	for _, e := range events {
		f.Add(uint8(1), e)
	}
	f.Add(uint8(2), []byte(`{"visit_id":"x"}`))
	f.Add(uint8(1), []byte(`{"specversion":"1.0","data":null}`))
	f.Add(uint8(0), []byte(`[{"specversion":"1.0","id":"a\r\nb","source":"/s","type":"vn.ioc.health.visit.v1","time":"1900-01-01T00:00:00Z","data":{}}]`))
	f.Fuzz(func(t *testing.T, mode uint8, body []byte) {
		before := dlqCount(t)
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e2eToken)
		switch mode % 3 {
		case 0:
			req.Header.Set("Content-Type", gateway.MediaBatch)
		case 1:
			req.Header.Set("Content-Type", gateway.MediaStructured)
		case 2:
			req.Header.Set("Content-Type", "application/json")
			for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": "fz-1", "ce-source": "/fuzz", "ce-type": "vn.ioc.health.visit.v1", "ce-time": "2026-11-20T08:00:00Z"} {
				req.Header.Set(k, v)
			}
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode >= 500 {
			t.Fatalf("status %d for caller input: %s", res.StatusCode, raw)
		}
		var r gateway.Response
		if err := json.Unmarshal(raw, &r); err != nil || r.Status != res.StatusCode {
			t.Fatalf("answer %d is not a response document: %s", res.StatusCode, raw)
		}
		if len(r.Accepted) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for {
			if ok, _ := natsjs.CaughtUp(ctx, js); ok {
				break
			}
			if ctx.Err() != nil {
				t.Fatal("the aggregator did not settle the accepted events")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if after := dlqCount(t); after != before {
			t.Fatalf("%d accepted events were dead-lettered after a %d: %s", after-before, res.StatusCode, raw)
		}
	})
}
