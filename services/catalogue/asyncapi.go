package catalogue

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/iochub/iochub/pkg/natsjs"
)

// ShareChannel is the AsyncAPI channel of the partner agencies'
// subscriptions of mode nats.
const ShareChannel = "agency_subscription"

// Info is what the documents say about the hub that serves them.
type Info struct {
	Version string // the hub's version
	NATS    string // host:port of the NATS server producers publish to
}

// AsyncAPI is the AsyncAPI 3.0 document of the hub's event channels: one
// channel per event type at its NATS subject, the message a structured
// CloudEvent whose data is the type's schema. The hub receives on every
// channel (direct producers publish there; the gateway and the connectors
// publish there for their senders).
func (c *Catalogue) AsyncAPI(info Info) ([]byte, error) {
	channels, operations, messages := map[string]any{}, map[string]any{}, map[string]any{}
	for i, e := range c.entries {
		data, err := inlined(c.docs[i])
		if err != nil {
			return nil, fmt.Errorf("asyncapi: %s: %w", e.Type, err)
		}
		key := e.Sector + "_" + e.Name + "_v" + fmt.Sprint(e.Version)
		messages[e.Type] = map[string]any{
			"name":            e.Type,
			"title":           e.Title.EN,
			"summary":         e.Title.VI,
			"description":     e.Description,
			"contentType":     "application/cloudevents+json",
			"payload":         envelope(e, data),
			"x-personal-data": e.PersonalData,
		}
		channels[key] = map[string]any{
			"address":     e.Subject,
			"title":       e.Title.EN,
			"summary":     e.Title.VI,
			"description": e.Description + " Events in the CloudEvents NATS binding, structured mode (binary mode, ce-* headers and the data as payload, is taken too).",
			"messages":    map[string]any{"event": map[string]any{"$ref": "#/components/messages/" + e.Type}},
		}
		operations["receive_"+key] = map[string]any{
			"action":  "receive",
			"title":   "Receive " + e.Title.EN,
			"summary": "The hub validates, pseudonymizes and stores each event of " + e.Type + " once per (source, id).",
			"channel": map[string]any{"$ref": "#/channels/" + key},
			"messages": []any{map[string]any{
				"$ref": "#/channels/" + key + "/messages/event",
			}},
		}
	}
	// What the hub sends to a partner agency's subscription of mode nats:
	// every type the agency's grants allow, in its own stream.
	shared := map[string]any{}
	for _, e := range c.entries {
		shared[strings.NewReplacer(".", "_").Replace(e.Type)] = map[string]any{"$ref": "#/components/messages/" + e.Type}
	}
	channels[ShareChannel] = map[string]any{
		"address": natsjs.ShareSubject("{agency}", "{subscription}"),
		"title":   "A partner agency's subscription",
		"summary": "Thuê bao của cơ quan đối tác",
		"description": "The events of an agency's subscription of mode nats, as its grants allow them (personal data pseudonymized or dropped), in the agency's own stream " +
			natsjs.ShareStream("{agency}") + ", read through the durable consumer named as the subscription by a NATS user of role subscriber. Each event keeps its id and source.",
		"parameters": map[string]any{
			"agency":       map[string]any{"description": "The agency's name (sharing.agencies)."},
			"subscription": map[string]any{"description": "The subscription's name (PUT /v1/subscriptions/{name} with mode nats)."},
		},
		"messages": shared,
	}
	operations["send_"+ShareChannel] = map[string]any{
		"action":  "send",
		"title":   "Send a subscription's events",
		"summary": "The hub sends each granted event once per (source, id), and again only after a failure before the agency's stream stored it.",
		"channel": map[string]any{"$ref": "#/channels/" + ShareChannel},
	}
	doc := map[string]any{
		"asyncapi": "3.0.0",
		"info": map[string]any{
			"title":       "iochub event channels",
			"version":     info.Version,
			"description": "The event types a province's Intelligent Operations Center hub takes on NATS JetStream (stream IOC_EVENTS). Each event is a CloudEvent whose data is checked against its type's JSON Schema (GET /v1/schemas); personal-data fields are pseudonymized or dropped before storage.",
		},
		"defaultContentType": "application/cloudevents+json",
		"channels":           channels,
		"operations":         operations,
		"components":         map[string]any{"messages": messages},
	}
	if info.NATS != "" {
		doc["servers"] = map[string]any{
			"hub": map[string]any{
				"host":        info.NATS,
				"protocol":    "nats",
				"description": "The hub's NATS server. A direct producer needs a NATS user of role producer, scoped to its types (README, Publishing straight onto NATS).",
			},
		}
	}
	return json.MarshalIndent(doc, "", "  ")
}

// envelope is the structured CloudEvent of e with data as its data.
func envelope(e Entry, data map[string]any) map[string]any {
	subject := map[string]any{"type": "string", "maxLength": 512}
	if e.SubjectPattern != "" {
		subject["pattern"] = e.SubjectPattern
	}
	return map[string]any{
		"type":     "object",
		"required": []string{"specversion", "id", "source", "type", "time", "data"},
		"properties": map[string]any{
			"specversion":     map[string]any{"const": "1.0"},
			"id":              map[string]any{"type": "string", "minLength": 1, "maxLength": 256},
			"source":          map[string]any{"type": "string", "minLength": 1, "maxLength": 512},
			"type":            map[string]any{"const": e.Type},
			"subject":         subject,
			"time":            map[string]any{"type": "string", "format": "date-time"},
			"datacontenttype": map[string]any{"const": "application/json"},
			"dataschema":      map[string]any{"type": "string", "format": "uri"},
			"data":            data,
		},
	}
}

// inlined is a type's schema made self-contained for another document:
// every "$ref": "#/$defs/…" replaced by the definition, and the
// document's own $schema, $id and $defs removed. The keywords left are
// those JSON Schema draft-07, AsyncAPI's schema dialect, reads the same way.
func inlined(doc map[string]any) (map[string]any, error) {
	defs, _ := doc["$defs"].(map[string]any)
	var walk func(v any, depth int) (any, error)
	walk = func(v any, depth int) (any, error) {
		if depth > 32 {
			return nil, fmt.Errorf("$ref nested deeper than 32")
		}
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				name, ok := strings.CutPrefix(ref, "#/$defs/")
				def, found := defs[name]
				if !ok || !found || len(x) != 1 {
					return nil, fmt.Errorf("$ref %q: only a lone reference to #/$defs/<name> of the same schema can be inlined", ref)
				}
				return walk(def, depth+1)
			}
			out := make(map[string]any, len(x))
			for k, val := range x {
				if depth == 0 && (k == "$schema" || k == "$id" || k == "$defs") {
					continue
				}
				w, err := walk(val, depth+1)
				if err != nil {
					return nil, err
				}
				out[k] = w
			}
			return out, nil
		case []any:
			out := make([]any, len(x))
			for i, val := range x {
				w, err := walk(val, depth+1)
				if err != nil {
					return nil, err
				}
				out[i] = w
			}
			return out, nil
		}
		return v, nil
	}
	out, err := walk(doc, 0)
	if err != nil {
		return nil, err
	}
	return out.(map[string]any), nil
}
