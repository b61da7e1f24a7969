package main

import (
	"strings"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/httpedge/httpedgetest"
	"github.com/iochub/iochub/services/iochub/internal/hub"
)

// TestEveryListenerCutsOffSlowHeaders: the hub's HTTP listener and its
// debug listener both close a connection whose client sends one header
// byte a second, once the configured read-header timeout has passed.
func TestEveryListenerCutsOffSlowHeaders(t *testing.T) {
	debugAddr := "127.0.0.1:" + freePort(t)
	base := startHubWith(t, "", func(c *hub.Config) {
		c.Services = "gateway"
		c.DebugAddr = debugAddr
		c.File.HTTP.ReadHeaderTimeout = 2 * time.Second
		c.File.HTTP.ReadTimeout = 3 * time.Second
	})
	for name, addr := range map[string]string{"http": base[len("http://"):], "debug": debugAddr} {
		t.Run(name, func(t *testing.T) { httpedgetest.SlowHeadersAreCutOff(t, addr) })
	}
	// A producer (authenticated, so the gateway reads its body) that sends
	// its batch one byte a second is cut off at the read timeout (finding H4).
	t.Run("slow body", func(t *testing.T) {
		got := httpedgetest.SlowBodiesAreCutOff(t, base[len("http://"):], "/v1/events",
			map[string]string{"Authorization": "Bearer " + e2eToken, "Content-Type": "application/cloudevents-batch+json"})
		if !strings.HasPrefix(got, "HTTP/1.1 408") {
			t.Errorf("the gateway's answer to a slow body: %q, want 408", got)
		}
	})
}
