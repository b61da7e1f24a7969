package main

import (
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
	})
	for name, addr := range map[string]string{"http": base[len("http://"):], "debug": debugAddr} {
		t.Run(name, func(t *testing.T) { httpedgetest.SlowHeadersAreCutOff(t, addr) })
	}
}
