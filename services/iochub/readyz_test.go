package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/services/iochub/internal/hub"
)

// TestReadyzNeedsTheStreams (finding L3): /readyz is ready only while
// IOC_EVENTS is there; deleted under the hub, it answers 503 naming it.
func TestReadyzNeedsTheStreams(t *testing.T) {
	natsAddr := "127.0.0.1:" + freePort(t)
	base := startHubWith(t, "", func(c *hub.Config) {
		c.Services = "gateway"
		c.NATS.Listen = natsAddr
	})
	ready := func() (int, string) {
		res, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		n, _ := res.Body.Read(buf)
		b.Write(buf[:n])
		return res.StatusCode, b.String()
	}
	if code, body := ready(); code != http.StatusOK {
		t.Fatalf("/readyz %d: %s", code, body)
	}
	nc, err := nats.Connect(opsURL(natsAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := natsjs.NewJetStream(nc)
	if err := js.DeleteStream(context.Background(), natsjs.EventsStream); err != nil {
		t.Fatal(err)
	}
	if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, natsjs.EventsStream) {
		t.Fatalf("/readyz without %s: %d %s, want 503 naming it", natsjs.EventsStream, code, body)
	}
}
