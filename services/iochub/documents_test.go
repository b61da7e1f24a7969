package main

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/services/catalogue/cataloguetest"
	"github.com/iochub/iochub/services/iocapi"
	"github.com/iochub/iochub/services/iochub/internal/hub"
	"github.com/iochub/iochub/services/monitor"
)

// /openapi.json of a running hub is valid OpenAPI 3.1 and lists exactly the
// routes its mux serves, each of which answers (no 404 or 405 from the
// mux); /asyncapi.json is valid AsyncAPI 3.0 with the hub's NATS address.
func TestDocumentsListWhatTheHubServes(t *testing.T) {
	natsAddr := "127.0.0.1:" + freePort(t)
	h, base := startHubInProcess(t, chstoretest.NewDatabase(t), func(c *hub.Config) {
		c.NATS.Listen = natsAddr
		c.Services = "gateway,aggregator,iocapi,monitor"
		c.AreasFile = "../../deploy/areas/bac-ninh.csv"
		c.File.IOCAPI.Readers = []iocapi.Reader{{Name: "lanh-dao", TokenSHA256: httpedge.HashToken(readerToken), Role: "leader"}}
		c.File.Monitor = monitor.Config{Interval: time.Second, Admins: []monitor.Admin{{Name: "ops", TokenSHA256: httpedge.HashToken("ops-token")}}}
	})
	get := func(path string) []byte {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return b
	}
	openapi := get("/openapi.json")
	cataloguetest.Validate(t, cataloguetest.OpenAPI31, openapi)
	asyncapi := get("/asyncapi.json")
	cataloguetest.Validate(t, cataloguetest.AsyncAPI30, asyncapi)
	if !strings.Contains(string(asyncapi), `"host": "`+natsAddr+`"`) {
		t.Errorf("/asyncapi.json does not name the hub's NATS at %s", natsAddr)
	}

	documented := cataloguetest.Operations(t, openapi)
	if served := h.Routes(); !slices.Equal(documented, served) {
		t.Fatalf("/openapi.json documents %v\nthe mux serves %v", documented, served)
	}
	for _, op := range documented {
		method, path, _ := strings.Cut(op, " ")
		path = strings.NewReplacer("{type}", "vn.ioc.health.visit.v1", "{name}", "health.visits", "{seq}", "1").Replace(path)
		req, _ := http.NewRequest(method, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusMethodNotAllowed || (resp.StatusCode == http.StatusNotFound && !strings.Contains(resp.Header.Get("Content-Type"), "json")) {
			t.Errorf("%s %s: %d %q: documented but not served", method, path, resp.StatusCode, body)
		}
	}
}
