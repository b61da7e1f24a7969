package catalogue

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/iochub/iochub/pkg/httpedge"
)

// DocumentRoutes are the documents' own routes (Documents.Register).
var DocumentRoutes = []string{"GET /openapi.json", "GET /asyncapi.json"}

// ErrUndocumented is matched when a process serves a route the OpenAPI
// table does not describe: add it to operations.
var ErrUndocumented = errors.New("route without an OpenAPI description")

// Who may call an operation.
const (
	public   = ""
	producer = "producerToken"
	reader   = "readerToken"
	admin    = "adminToken"
	operator = "operatorToken"
	webhook  = "webhookSignature"
	agency   = "agencyToken"
)

// operation describes one route for the OpenAPI document.
type operation struct {
	tag, summary string
	security     string
	query        []param
	body         map[string]string // request body: media type → schema ($ref name or "object")
	ok           int               // the success status
	okType       string            // its media type: application/json (default), text/html, text/plain
	okSchema     string            // its schema: a component name, or "" for any object
	errs         []int             // statuses answered with a problem document
}

type param struct{ name, description string }

// operations describes every route any service of the hub mounts, by its
// http.ServeMux pattern. A process documents those it serves.
var operations = map[string]operation{
	"POST /v1/events": {tag: "gateway", summary: "Send events (CloudEvents HTTP binding: structured, binary or batch mode)", security: producer,
		body: map[string]string{"application/cloudevents+json": "CloudEvent", "application/cloudevents-batch+json": "CloudEventBatch", "application/json": "object"},
		ok:   http.StatusAccepted, okSchema: "Accepted", errs: []int{207, 400, 401, 403, 408, 409, 413, 415, 429, 503}},
	"GET /v1/schemas":        {tag: "catalogue", summary: "Every event type: titles, NATS subject, JSON Schema, personal-data fields and their protection", ok: 200, okSchema: "SchemaList"},
	"GET /v1/schemas/{type}": {tag: "catalogue", summary: "One event type", ok: 200, okSchema: "SchemaEntry", errs: []int{404}},
	"GET /openapi.json":      {tag: "catalogue", summary: "This document: every HTTP route the process serves", ok: 200},
	"GET /asyncapi.json":     {tag: "catalogue", summary: "The AsyncAPI 3.0 document of the event channels on NATS", ok: 200},
	"GET /v1/lists":          {tag: "iocapi", summary: "The lists behind the KPIs the reader may see: their columns and default order", security: reader, ok: 200, errs: []int{401}},
	"GET /v1/lists/{name}": {tag: "iocapi", summary: "One page of a list (overdue dossiers, late field reports, incidents, field reports): the latest state of each entity, no personal data", security: reader, ok: 200, errs: []int{400, 401, 403, 404, 503},
		query: []param{
			{"from", "start of the entities' opening time, RFC 3339 or YYYY-MM-DD, at most 367 days before to; default: today's midnight for incidents, the same day a year back for the others"},
			{"to", "end, RFC 3339 or YYYY-MM-DD; default: now"},
			{"sort", "a column of the list; default: the list's own (days overdue, age, newest first)"},
			{"order", "asc or desc"},
			{"page", "from 1"},
			{"size", "rows a page, 1 to 1000; default 50"},
			{"format", "json (default) or csv: every row, at most 100000 (more: 400)"},
			{"area", "filter by area code (a district or the province); agency and category filter the same way where the list has them"},
		}},
	"GET /v1/kpis": {tag: "iocapi", summary: "The KPIs the reader may see", security: reader, ok: 200, errs: []int{401}},
	"GET /v1/kpis/{name}": {tag: "iocapi", summary: "A KPI's value, series or breakdown", security: reader, ok: 200, errs: []int{400, 401, 403, 404, 503},
		query: []param{
			{"from", "start, RFC 3339 or YYYY-MM-DD (province's time zone); default: midnight of the 7th calendar day back, the day of to counted (the dashboard's 'last 7 days')"},
			{"to", "end, RFC 3339 or YYYY-MM-DD; default: now"},
			{"granularity", "hour, day or month: a series instead of one value"},
			{"by", "a dimension of the KPI: a breakdown"},
			{"format", "json (default) or csv"},
			{"compare", "previous: also the total of the period before (moved back by the whole calendar days the period spans) and the change"},
			{"area", "filter by area code; the KPI's other dimensions filter the same way"},
		}},
	"GET /v1/areas/shapes": {tag: "iocapi", summary: "The units' outlines for the map (GeoJSON beside the areas CSV); 404 when there are none", security: reader, ok: 200, errs: []int{401, 404}},
	"GET /v1/alerts":       {tag: "iocapi", summary: "The monitor's alerts that matter on the IOC's screens (a source silent, the store down, the aggregator behind), firing now, in Vietnamese and English", security: reader, ok: 200, errs: []int{401, 503}},
	"GET /v1/areas":        {tag: "iocapi", summary: "The area reference data", security: reader, ok: 200, errs: []int{401}},
	"GET /v1/whoami":       {tag: "iocapi", summary: "The reader the token names, and its role", security: reader, ok: 200, errs: []int{401}},
	"GET /":                {tag: "iocapi", summary: "The IOC dashboard and its static files (any path no other route takes)", ok: 200, okType: "text/html"},
	"GET /ops":             {tag: "monitor", summary: "The operators' page (its data needs an admin token)", ok: 200, okType: "text/html"},
	"GET /public":          {tag: "public", summary: "The citizen field-report portal's public results (Vietnamese page)", ok: 200, okType: "text/html"},
	"GET /v1/public/feedback": {tag: "public", summary: "Field reports received, resolved and on time over 30 calendar days, in total, by category and by commune; groups under 5 reports suppressed", ok: 200, errs: []int{400, 503},
		query: []param{{"to", "the period's last day, YYYY-MM-DD in the province's time zone; default today"}}},
	"GET /healthz":          {tag: "process", summary: "The process is up", ok: 200},
	"GET /readyz":           {tag: "process", summary: "The process can serve: NATS and ClickHouse answer", ok: 200, errs: []int{503}},
	"GET /metrics":          {tag: "monitor", summary: "Prometheus metrics", security: admin, ok: 200, okType: "text/plain", errs: []int{401, 403}},
	"GET /v1/ops/whoami":    {tag: "monitor", summary: "The admin the token names, and its role", security: admin, ok: 200, errs: []int{401}},
	"GET /v1/ops/snapshot":  {tag: "monitor", summary: "Everything the monitor knows, at once", security: admin, ok: 200, errs: []int{401}},
	"GET /v1/ops/streams":   {tag: "monitor", summary: "The JetStream streams", security: admin, ok: 200, errs: []int{401}},
	"GET /v1/ops/consumers": {tag: "monitor", summary: "The durable consumers: pending, awaiting ack, redelivered", security: admin, ok: 200, errs: []int{401}},
	"GET /v1/ops/sources":   {tag: "monitor", summary: "Every source: events, last event, expected interval", security: admin, ok: 200, errs: []int{401}},
	"GET /v1/ops/rates":     {tag: "monitor", summary: "Events per second, recent samples", security: admin, ok: 200, errs: []int{401}},
	"GET /v1/ops/alerts":    {tag: "monitor", summary: "Alerts firing and resolved", security: admin, ok: 200, errs: []int{401}},
	"GET /v1/ops/dlq": {tag: "monitor", summary: "Dead letters, newest first", security: admin, ok: 200, errs: []int{400, 401},
		query: []param{{"limit", "how many, at most 1000; default 100"}}},
	"GET /v1/ops/dlq/{seq}":         {tag: "monitor", summary: "One dead letter", security: admin, ok: 200, errs: []int{400, 401, 404}},
	"POST /v1/ops/dlq/{seq}/replay": {tag: "monitor", summary: "Publish a dead letter's event again", security: operator, ok: 200, errs: []int{400, 401, 403, 404, 422, 503}},
	"POST /v1/ops/dlq/replay":       {tag: "monitor", summary: "Publish every dead letter's event again", security: operator, ok: 200, errs: []int{401, 403, 503}},
	"DELETE /v1/ops/dlq/{seq}":      {tag: "monitor", summary: "Remove one dead letter", security: operator, ok: 200, errs: []int{400, 401, 403, 404, 503}},
	"DELETE /v1/ops/dlq": {tag: "monitor", summary: "Remove every dead letter", security: operator, ok: 200, errs: []int{400, 401, 403, 503},
		query: []param{{"confirm", "must be all"}}},
	"GET /v1/subscriptions":           {tag: "sharing", summary: "The agency's subscriptions", security: agency, ok: 200, errs: []int{401, 503}},
	"PUT /v1/subscriptions/{name}":    {tag: "sharing", summary: "Subscribe to event types (and areas, a subject prefix) within the agency's grants", security: agency, body: map[string]string{"application/json": "object"}, ok: http.StatusCreated, errs: []int{400, 401, 403, 409, 503}},
	"GET /v1/subscriptions/{name}":    {tag: "sharing", summary: "One of the agency's subscriptions", security: agency, ok: 200, errs: []int{401, 403, 404, 503}},
	"DELETE /v1/subscriptions/{name}": {tag: "sharing", summary: "End a subscription", security: agency, ok: 200, errs: []int{401, 403, 404, 503}},
	"GET /v1/subscriptions/{name}/events": {tag: "sharing", summary: "Pull events (long poll): after= confirms the previous answer's events; unconfirmed ones come again", security: agency, ok: 200, errs: []int{400, 401, 403, 404, 503},
		query: []param{{"after", "the cursor of the previous answer: its events are confirmed"}, {"max", "at most this many events, 1 to 1000; default 100"}, {"wait", "seconds to wait for the first event, 0 to 25; default 20"}}},
	"POST /v1/subscriptions/{name}/pause":               {tag: "sharing", summary: "Stop a push subscription's delivery; what waits stays on the log, in order", security: agency, ok: 200, errs: []int{401, 403, 404, 409, 503}},
	"POST /v1/subscriptions/{name}/resume":              {tag: "sharing", summary: "Deliver a paused push subscription again", security: agency, ok: 200, errs: []int{401, 403, 404, 409, 503}},
	"GET /v1/subscriptions/{name}/dead-letters":         {tag: "sharing", summary: "A push subscription's dead letters (events not delivered within its give_up time): how many, and the oldest 100", security: agency, ok: 200, errs: []int{401, 403, 404, 503}},
	"POST /v1/subscriptions/{name}/dead-letters/replay": {tag: "sharing", summary: "Deliver a push subscription's dead letters again, oldest first, before what waits on the log", security: agency, ok: http.StatusAccepted, errs: []int{401, 403, 404, 409, 503}},
	"GET /v1/exchanges": {tag: "sharing", summary: "The agency's records in the hash-chained audit log: its grants and every exchange (events sent and confirmed, each with the SHA-256 of its payload)", security: agency, ok: 200, errs: []int{400, 401, 503},
		query: []param{{"from", "RFC 3339, inclusive"}, {"to", "RFC 3339, exclusive"}, {"limit", "the newest this many records, 1 to 10000; default 1000"}}},
	"POST /v1/webhooks/feedback":          {tag: "connectors", summary: "The citizen field-report portal's webhook", security: webhook, body: map[string]string{"application/json": "object"}, ok: http.StatusAccepted, errs: []int{400, 401, 413, 503}},
	"POST /v1/webhooks/traffic-incidents": {tag: "connectors", summary: "The traffic incident system's webhook", security: webhook, body: map[string]string{"application/json": "object"}, ok: http.StatusAccepted, errs: []int{400, 401, 413, 503}},
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// OpenAPI is the OpenAPI 3.1 document of the routes patterns (as mounted on
// the process's http.ServeMux). A pattern the table does not describe is
// an ErrUndocumented naming it.
func OpenAPI(patterns []string, info Info) ([]byte, error) {
	paths := map[string]map[string]any{}
	var missing []string
	for _, p := range patterns {
		op, ok := operations[p]
		method, path, found := strings.Cut(p, " ")
		if !ok || !found {
			missing = append(missing, p)
			continue
		}
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(method)] = op.document(method, path)
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("%w: %s", ErrUndocumented, strings.Join(missing, ", "))
	}
	bearer := func(who string) map[string]any {
		return map[string]any{"type": "http", "scheme": "bearer", "description": who}
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "iochub HTTP API",
			"version":     info.Version,
			"description": "The HTTP routes this iochub process serves (its --services). Every answer other than a success is a problem document (RFC 9457).",
		},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				producer: bearer("A producer's token (gateway.producers in the config file): scoped to sources and types."),
				reader:   bearer("A reader's token (iocapi.readers): a leader reads every sector, a sector role its own."),
				admin:    bearer("An admin's token (monitor.admins), role viewer or operator."),
				operator: bearer("An admin's token of role operator: it may also replay and remove dead letters."),
				agency:   bearer("A partner agency's token (sharing.agencies): its subscriptions, within its grants."),
				webhook: map[string]any{"type": "apiKey", "in": "header", "name": "Webhook-Signature",
					"description": "Standard Webhooks: Webhook-Id, Webhook-Timestamp (Unix seconds, within 5 minutes) and Webhook-Signature v1,<base64 HMAC-SHA256 of id.timestamp.body> under the system's shared secret."},
			},
			"schemas": componentSchemas,
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func (op operation) document(method, path string) map[string]any {
	id := strings.ToLower(method) + strings.NewReplacer("/", "_", "{", "", "}", "", ".", "_", "-", "_").Replace(path)
	if path == "/" {
		id = strings.ToLower(method) + "_root"
	}
	out := map[string]any{"tags": []string{op.tag}, "summary": op.summary, "operationId": id}
	if op.security != public {
		out["security"] = []any{map[string]any{op.security: []string{}}}
	}
	var params []any
	for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
		params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
	}
	for _, q := range op.query {
		params = append(params, map[string]any{"name": q.name, "in": "query", "description": q.description, "schema": map[string]any{"type": "string"}})
	}
	if len(params) > 0 {
		out["parameters"] = params
	}
	if op.body != nil {
		content := map[string]any{}
		for mt, s := range op.body {
			content[mt] = map[string]any{"schema": schemaRef(s)}
		}
		out["requestBody"] = map[string]any{"required": true, "content": content}
	}
	okType := op.okType
	if okType == "" {
		okType = "application/json"
	}
	okSchema := map[string]any{"type": "string"}
	if okType == "application/json" {
		okSchema = schemaRef(op.okSchema)
	}
	responses := map[string]any{fmt.Sprint(op.ok): map[string]any{"description": http.StatusText(op.ok), "content": map[string]any{okType: map[string]any{"schema": okSchema}}}}
	for _, s := range op.errs {
		responses[fmt.Sprint(s)] = map[string]any{"description": http.StatusText(s),
			"content": map[string]any{"application/problem+json": map[string]any{"schema": schemaRef("Problem")}}}
	}
	out["responses"] = responses
	return out
}

func schemaRef(name string) map[string]any {
	if name == "" || name == "object" {
		return map[string]any{"type": "object"}
	}
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

var componentSchemas = map[string]any{
	"Problem": map[string]any{"type": "object", "required": []string{"type", "title", "status"},
		"properties": map[string]any{"type": map[string]any{"type": "string"}, "title": map[string]any{"type": "string"},
			"status": map[string]any{"type": "integer"}, "detail": map[string]any{"type": "string"},
			"errors": map[string]any{"type": "array", "items": map[string]any{"type": "object"}}}},
	"CloudEvent": map[string]any{"type": "object", "required": []string{"specversion", "id", "source", "type", "time"},
		"description": "A CloudEvent 1.0 in the JSON format; data (or data_base64) is checked against the type's schema (GET /v1/schemas/{type}).",
		"properties": map[string]any{"specversion": map[string]any{"const": "1.0"}, "id": map[string]any{"type": "string"},
			"source": map[string]any{"type": "string"}, "type": map[string]any{"type": "string", "pattern": `^vn\.ioc\.[a-z0-9_]+\.[a-z0-9_]+\.v[0-9]+$`},
			"subject": map[string]any{"type": "string"}, "time": map[string]any{"type": "string", "format": "date-time"},
			"data": map[string]any{}, "data_base64": map[string]any{"type": "string"}}},
	"CloudEventBatch": map[string]any{"type": "array", "items": map[string]any{"$ref": "#/components/schemas/CloudEvent"}},
	"Accepted": map[string]any{"type": "object", "properties": map[string]any{
		"accepted": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
			"id": map[string]any{"type": "string"}, "source": map[string]any{"type": "string"}, "duplicate": map[string]any{"type": "boolean"}}}},
		"results": map[string]any{"type": "array", "items": map[string]any{"type": "object"}}}},
	"SchemaEntry": map[string]any{"type": "object", "required": []string{"type", "sector", "name", "version", "title", "nats_subject", "personal_data", "schema"},
		"properties": map[string]any{"type": map[string]any{"type": "string"}, "sector": map[string]any{"type": "string"},
			"name": map[string]any{"type": "string"}, "version": map[string]any{"type": "integer"},
			"title":       map[string]any{"type": "object", "properties": map[string]any{"vi": map[string]any{"type": "string"}, "en": map[string]any{"type": "string"}}},
			"description": map[string]any{"type": "string"}, "nats_subject": map[string]any{"type": "string"}, "subject_pattern": map[string]any{"type": "string"},
			"personal_data": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
				"pointer": map[string]any{"type": "string"}, "protection": map[string]any{"enum": []string{"pseudonymize", "drop"}}, "how": map[string]any{"type": "string"}}}},
			"schema": map[string]any{"type": "object", "description": "the type's JSON Schema (draft 2020-12)"}}},
	"SchemaList": map[string]any{"type": "object", "properties": map[string]any{"schemas": map[string]any{"type": "array", "items": map[string]any{"$ref": "#/components/schemas/SchemaEntry"}}}},
}

// Documents are the OpenAPI and AsyncAPI documents a process serves.
type Documents struct{ OpenAPI, AsyncAPI []byte }

// Register mounts DocumentRoutes on mux.
func (d Documents) Register(mux httpedge.Router) {
	serve := func(b []byte) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(b)
		}
	}
	mux.HandleFunc(DocumentRoutes[0], serve(d.OpenAPI))
	mux.HandleFunc(DocumentRoutes[1], serve(d.AsyncAPI))
}
