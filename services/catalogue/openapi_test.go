package catalogue_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/iochub/iochub/services/catalogue"
	"github.com/iochub/iochub/services/catalogue/cataloguetest"
)

// allPatterns is every route of the OpenAPI table, as a hub running every
// service with every connector mounts them.
var allPatterns = []string{
	"POST /v1/events", "GET /v1/schemas", "GET /v1/schemas/{type}", "GET /openapi.json", "GET /asyncapi.json",
	"GET /v1/kpis", "GET /v1/kpis/{name}", "GET /v1/lists", "GET /v1/lists/{name}", "GET /v1/alerts", "GET /v1/areas", "GET /v1/areas/shapes", "GET /v1/whoami", "GET /", "GET /ops",
	"GET /public", "GET /v1/public/feedback",
	"GET /v1/subscriptions", "PUT /v1/subscriptions/{name}", "GET /v1/subscriptions/{name}", "DELETE /v1/subscriptions/{name}",
	"GET /v1/subscriptions/{name}/events", "GET /v1/exchanges",
	"POST /v1/subscriptions/{name}/pause", "POST /v1/subscriptions/{name}/resume",
	"GET /v1/subscriptions/{name}/dead-letters", "POST /v1/subscriptions/{name}/dead-letters/replay",
	"GET /healthz", "GET /readyz", "GET /metrics", "GET /v1/ops/whoami", "GET /v1/ops/snapshot",
	"GET /v1/ops/streams", "GET /v1/ops/consumers", "GET /v1/ops/sources", "GET /v1/ops/rates",
	"GET /v1/ops/alerts", "GET /v1/ops/dlq", "GET /v1/ops/dlq/{seq}", "POST /v1/ops/dlq/{seq}/replay",
	"POST /v1/ops/dlq/replay", "DELETE /v1/ops/dlq/{seq}", "DELETE /v1/ops/dlq",
	"POST /v1/webhooks/feedback", "POST /v1/webhooks/traffic-incidents",
}

// The document is valid OpenAPI 3.1 (the OpenAPI Initiative's JSON Schema:
// cataloguetest) and has an operation for each route it is given, and no other.
func TestOpenAPIIsValidAndHasEveryRoute(t *testing.T) {
	doc, err := catalogue.OpenAPI(allPatterns, catalogue.Info{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	cataloguetest.Validate(t, cataloguetest.OpenAPI31, doc)
	ops := cataloguetest.Operations(t, doc)
	if len(ops) != len(allPatterns) {
		t.Fatalf("%d operations for %d routes: %v", len(ops), len(allPatterns), ops)
	}
	// A process serving less documents less.
	doc, err = catalogue.OpenAPI([]string{"POST /v1/events", "GET /healthz"}, catalogue.Info{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if ops := cataloguetest.Operations(t, doc); len(ops) != 2 {
		t.Fatalf("operations %v, want the two routes served", ops)
	}
}

// A route without a description is refused by name: the hub does not start
// with a route its /openapi.json would leave out.
func TestAnUndocumentedRouteIsRefused(t *testing.T) {
	_, err := catalogue.OpenAPI(append([]string{"GET /v1/secret"}, allPatterns...), catalogue.Info{})
	if !errors.Is(err, catalogue.ErrUndocumented) || !strings.Contains(err.Error(), "GET /v1/secret") {
		t.Fatalf("err = %v, want ErrUndocumented naming GET /v1/secret", err)
	}
}
