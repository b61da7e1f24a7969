// Package catalogue serves the hub's catalogue of event types to producers
// and partner agencies: GET /v1/schemas (every type: sector, name, version,
// titles in Vietnamese and English, the NATS subject, the JSON Schema, and
// which fields are personal data and how the hub protects them) and
// GET /v1/schemas/{type}. The schemas are the hub's public contract (they
// are in its repository), so no token is asked.
package catalogue

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
)

// ProblemUnknownType is the problem type of a type the hub has no schema for.
const ProblemUnknownType = "urn:iochub:problem:unknown-type"

// Entry is one event type of the catalogue.
type Entry struct {
	Type         string          `json:"type"` // vn.ioc.<sector>.<name>.v<version>
	Sector       string          `json:"sector"`
	Name         string          `json:"name"`
	Version      int             `json:"version"`
	Title        schema.Text     `json:"title"`
	Description  string          `json:"description,omitempty"`
	Subject      string          `json:"nats_subject"` // where the hub stores events of the type on IOC_EVENTS
	PersonalData []PersonalField `json:"personal_data"`
	Schema       json.RawMessage `json:"schema"` // the JSON Schema of the event's data
	// SubjectPattern is what the subject attribute must match (the
	// schema's x-subject), empty for any subject.
	SubjectPattern string `json:"subject_pattern,omitempty"`
}

// PersonalField is a personal-data field of a type and what the hub does
// with it before any event leaves the gateway.
type PersonalField struct {
	Pointer    string `json:"pointer"`    // JSON Pointer into data
	Protection string `json:"protection"` // "pseudonymize" or "drop"
	How        string `json:"how"`
}

// protections say, for readers of the catalogue, what each action does.
var protections = map[schema.PIIAction]string{
	schema.PIIPseudonymize: "replaced at the hub's edge by a keyed hash, " + pii.Prefix + "<key id>:<64 hex digits> (HMAC-SHA-256 with the hub's key): the same value gives the same pseudonym, and without the key it cannot be turned back; neither the stream nor ClickHouse nor any subscriber sees the value",
	schema.PIIDrop:         "removed at the hub's edge: never stored, never delivered",
}

// Catalogue answers the catalogue's routes from a registry.
type Catalogue struct {
	entries []Entry
	docs    []map[string]any // each entry's schema, decoded
	byType  map[string]int
}

// New builds the catalogue of every type of reg.
func New(reg *schema.Registry) *Catalogue {
	c := &Catalogue{byType: map[string]int{}}
	// reg compiled every document: they are JSON objects.
	for _, t := range reg.Types() {
		e := Entry{
			Type: t.Name.String(), Sector: t.Name.Sector, Name: t.Name.Name, Version: t.Name.Major,
			Title: t.Title, Description: t.Description, Subject: t.Name.Subject(),
			PersonalData: []PersonalField{}, Schema: t.Document,
		}
		if t.Subject != nil {
			e.SubjectPattern = t.Subject.Pattern.String()
		}
		var doc map[string]any
		_ = json.Unmarshal(t.Document, &doc)
		c.docs = append(c.docs, doc)
		for _, f := range t.PII {
			e.PersonalData = append(e.PersonalData, PersonalField{Pointer: "/" + strings.Join(f.Path, "/"), Protection: string(f.Action), How: protections[f.Action]})
		}
		c.byType[e.Type] = len(c.entries)
		c.entries = append(c.entries, e)
	}
	return c
}

// Entries lists every type, sorted by name.
func (c *Catalogue) Entries() []Entry { return c.entries }

// Register mounts GET /v1/schemas and GET /v1/schemas/{type} on mux.
func (c *Catalogue) Register(mux httpedge.Router) {
	mux.HandleFunc("GET /v1/schemas", c.list)
	mux.HandleFunc("GET /v1/schemas/{type}", c.one)
}

func (c *Catalogue) list(w http.ResponseWriter, _ *http.Request) {
	httpedge.WriteJSON(w, http.StatusOK, map[string]any{"schemas": c.entries})
}

func (c *Catalogue) one(w http.ResponseWriter, r *http.Request) {
	typ := r.PathValue("type")
	i, ok := c.byType[typ]
	if len(typ) > 120 {
		typ = typ[:120] + "…"
	}
	if !ok {
		httpedge.Problem{Type: ProblemUnknownType, Title: "Unknown event type", Status: http.StatusNotFound,
			Detail: "the hub has no schema for " + strings.ToValidUTF8(typ, "?") + "; GET /v1/schemas lists every type"}.Write(w)
		return
	}
	httpedge.WriteJSON(w, http.StatusOK, c.entries[i])
}
