package main

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iochub/iochub/services/connectors"
	"github.com/iochub/iochub/services/iochub/internal/hub"
)

// TestConnectorsRunOnlyWithTheirRole starts two hubs on the dev config,
// one with --services gateway and one with --services connectors, each
// with the dossier API its publicservice connector polls. The connectors'
// hub mounts the webhooks and polls its API; the gateway's hub mounts no
// webhook (404) and its API is never polled.
func TestConnectorsRunOnlyWithTheirRole(t *testing.T) {
	type fakeAPI struct {
		srv   *httptest.Server
		polls atomic.Int64
	}
	newAPI := func() *fakeAPI {
		a := &fakeAPI{}
		a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a.polls.Add(1)
			http.Error(w, "no dossiers here", http.StatusServiceUnavailable)
		}))
		t.Cleanup(a.srv.Close)
		return a
	}
	start := func(services string, api *fakeAPI) string {
		return startHubWith(t, "", func(c *hub.Config) {
			c.Services = services
			c.ConfigFile = "../../deploy/iochub.dev.yaml"
			c.NATS.DataDir = filepath.Join(t.TempDir(), "hub")
			c.NATS.MQTTListen = "127.0.0.1:" + freePort(t)
			if err := c.Load(); err != nil {
				t.Fatal(err)
			}
			c.File.Connectors.PublicService.URL = api.srv.URL
			c.File.Connectors.PublicService.Interval = 100 * time.Millisecond
			c.File.Connectors.Health.FHIRURL = api.srv.URL + "/fhir"
		})
	}
	gwAPI, connAPI := newAPI(), newAPI()
	gw := start("gateway", gwAPI)
	conn := start("connectors", connAPI)

	webhook := func(base string) int {
		res, err := http.Post(base+connectors.FeedbackWebhookPath, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := webhook(gw); code != http.StatusNotFound {
		t.Errorf("--services gateway: the feedback webhook answered %d, want 404 (no connector mounted)", code)
	}
	if code := webhook(conn); code != http.StatusUnauthorized {
		t.Errorf("--services connectors: the unsigned feedback webhook answered %d, want 401 (the connector's)", code)
	}
	// The connectors' hub polls its dossier API repeatedly; by then a hub
	// that ran connectors with --services gateway would have polled too.
	waitFor(t, "the connectors' hub to poll its dossier API three times", time.Minute, func() bool { return connAPI.polls.Load() >= 3 })
	if n := gwAPI.polls.Load(); n != 0 {
		t.Errorf("--services gateway polled the dossier API %d times; want no connector running", n)
	}
}
