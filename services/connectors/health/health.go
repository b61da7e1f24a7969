// Package health polls a hospital information system's HL7 FHIR R4 server
// for encounters updated since a cursor — a search on Encounter with
// _lastUpdated, _sort and _include=Encounter:subject, following the
// Bundle's next links — and turns each into a health.visit event.
//
// Mapping: Encounter.id → visit_id; class AMB/IMP/EMER → outpatient,
// inpatient, emergency; serviceProvider Organization/<code> → facility_code;
// the area from the extension AreaExtension, else from the facility table
// of the config; the included Patient's gender and birthDate (age at the
// encounter's start) → sex and age band; reasonCode in ICD-10 → icd10; the
// extensions InsuredExtension (valueBoolean) and WaitExtension
// (valueInteger, minutes) → insured, wait_minutes; the patient reference →
// patient_id (pseudonymized).
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/event"
)

// The sources of the events the health connectors make (a facility code
// follows); they are reserved for them (the gateway refuses them to
// producers).
const (
	FHIRSources = "/health/fhir/"
	BedSources  = "/health/beds/"
)

// Extensions iochub reads on an Encounter.
const (
	AreaExtension    = "http://iochub.vn/fhir/StructureDefinition/area-code"
	InsuredExtension = "http://iochub.vn/fhir/StructureDefinition/insured"
	WaitExtension    = "http://iochub.vn/fhir/StructureDefinition/wait-minutes"
	ICD10System      = "http://hl7.org/fhir/sid/icd-10"
)

// Poller is the connector's source.
type Poller struct {
	BaseURL  string        // the FHIR base, e.g. http://his.example/fhir
	Token    string        // bearer token, if the server wants one
	Interval time.Duration // between polls once caught up; default 30 s
	Count    int           // _count; default 100
	Client   *http.Client

	after cursor // the last encounter handed out
	pages connector.Pager
}

// cursor is the last encounter handled: its lastUpdated and id. Encounters
// are read with _lastUpdated=ge and those at or before the cursor in
// (lastUpdated, id) order skipped, so encounters sharing an instant are
// neither lost nor read twice (gt alone would lose them).
type cursor struct {
	at time.Time
	id string
}

func (c cursor) String() string {
	if c.at.IsZero() {
		return ""
	}
	return c.at.UTC().Format(time.RFC3339Nano) + "|" + c.id
}

func parseCursor(s string) (cursor, error) {
	if s == "" {
		return cursor{}, nil
	}
	at, id, ok := strings.Cut(s, "|")
	t, err := time.Parse(time.RFC3339Nano, at)
	if !ok || err != nil {
		return cursor{}, fmt.Errorf("checkpoint %q: want <lastUpdated>|<id>", s)
	}
	return cursor{at: t, id: id}, nil
}

func (c cursor) before(at time.Time, id string) bool {
	return c.at.Before(at) || (c.at.Equal(at) && c.id < id)
}

// Connect resumes after the checkpoint.
func (p *Poller) Connect(_ context.Context, checkpoint string) error {
	if p.BaseURL == "" {
		return errors.New("FHIR base URL is empty")
	}
	c, err := parseCursor(checkpoint)
	if err != nil {
		return err
	}
	p.after = c
	p.pages = connector.Pager{Interval: p.Interval, FirstURL: p.firstURL, Fetch: p.fetch}
	return nil
}

func (p *Poller) firstURL() string {
	count := p.Count
	if count <= 0 {
		count = 100
	}
	q := url.Values{"_sort": {"_lastUpdated,_id"}, "_include": {"Encounter:subject"}, "_count": {fmt.Sprint(count)}}
	if !p.after.at.IsZero() {
		q.Set("_lastUpdated", "ge"+p.after.at.UTC().Format(time.RFC3339Nano))
	}
	return strings.TrimRight(p.BaseURL, "/") + "/Encounter?" + q.Encode()
}

// Read returns the next updated encounter (with its patient), polling when
// caught up.
func (p *Poller) Read(ctx context.Context) (connector.Record, error) {
	r, err := p.pages.Next(ctx)
	if err == nil {
		p.after, _ = parseCursor(r.Cursor)
	}
	return r, err
}

type bundle struct {
	ResourceType string `json:"resourceType"`
	Link         []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		Resource json.RawMessage `json:"resource"`
		Search   struct {
			Mode string `json:"mode"`
		} `json:"search"`
	} `json:"entry"`
}

type resourceHead struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Meta         struct {
		VersionID   any    `json:"versionId"` // a string in FHIR; tolerated as a number
		LastUpdated string `json:"lastUpdated"`
	} `json:"meta"`
	Subject struct {
		Reference string `json:"reference"`
	} `json:"subject"`
}

// fetch reads one Bundle page: the encounters after the cursor, each with
// its included patient, in (lastUpdated, id) order.
func (p *Poller) fetch(ctx context.Context, u string) ([]connector.Record, string, error) {
	var b bundle
	if err := connector.GetJSON(ctx, p.Client, u, p.Token, "application/fhir+json", "FHIR server", &b); err != nil {
		return nil, "", err
	}
	if b.ResourceType != "Bundle" {
		return nil, "", fmt.Errorf("%w: FHIR server answered a %q, not a Bundle, to %s", connector.ErrUnavailable, b.ResourceType, u)
	}
	patients := map[string]json.RawMessage{}
	type enc struct {
		raw  json.RawMessage
		head resourceHead
		at   time.Time
	}
	var encs []enc
	for _, e := range b.Entry {
		var h resourceHead
		if err := json.Unmarshal(e.Resource, &h); err != nil {
			h.ResourceType = "Encounter" // keep it: the mapping dead-letters it with the reason
		}
		switch h.ResourceType {
		case "Patient":
			patients["Patient/"+h.ID] = e.Resource
		case "Encounter":
			at, err := time.Parse(time.RFC3339Nano, h.Meta.LastUpdated)
			if err != nil {
				at = time.Time{} // kept: the mapping dead-letters it, naming meta.lastUpdated
			}
			encs = append(encs, enc{raw: e.Resource, head: h, at: at})
		}
	}
	sort.SliceStable(encs, func(i, j int) bool {
		if !encs[i].at.Equal(encs[j].at) {
			return encs[i].at.Before(encs[j].at)
		}
		return encs[i].head.ID < encs[j].head.ID
	})
	var out []connector.Record
	for _, e := range encs {
		if !e.at.IsZero() && !p.after.before(e.at, e.head.ID) {
			continue // handled before (same instant, or the ge bound)
		}
		pair, _ := json.Marshal(map[string]json.RawMessage{"encounter": e.raw, "patient": patients[e.head.Subject.Reference]})
		c := cursor{at: e.at, id: e.head.ID}
		if e.at.IsZero() {
			c = p.after // a broken encounter does not move the cursor backwards
		}
		out = append(out, connector.Record{Key: "Encounter/" + e.head.ID, Version: fmt.Sprint(e.head.Meta.VersionID), // FHIR's version of the resource: read again, the same event
			Cursor: c.String(), Data: pair})
	}
	next := ""
	for _, l := range b.Link {
		if l.Relation == "next" {
			next = l.URL
		}
	}
	return out, next, nil
}

// Ack does nothing: the cursor is the checkpoint.
func (p *Poller) Ack(context.Context, connector.Record) error { return nil }

// Close drops what was read and not handed out.
func (p *Poller) Close() error { p.pages.Reset(); return nil }

// Mapper maps encounters; Facilities gives the area of a facility code when
// the encounter has no AreaExtension.
type Mapper struct {
	Facilities map[string]string
}

type extension struct {
	URL          string  `json:"url"`
	ValueString  *string `json:"valueString"`
	ValueCode    *string `json:"valueCode"`
	ValueBoolean *bool   `json:"valueBoolean"`
	ValueInteger *int    `json:"valueInteger"`
}

// Map turns an encounter and its patient into a visit event.
func (m Mapper) Map(r connector.Record) (event.Event, error) {
	var pair struct {
		Encounter json.RawMessage `json:"encounter"`
		Patient   json.RawMessage `json:"patient"`
	}
	if err := json.Unmarshal(r.Data, &pair); err != nil {
		return event.Event{}, fmt.Errorf("%s: %w", r.Key, err)
	}
	var enc struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Meta   struct {
			LastUpdated string `json:"lastUpdated"`
		} `json:"meta"`
		Class struct {
			Code string `json:"code"`
		} `json:"class"`
		Subject struct {
			Reference string `json:"reference"`
		} `json:"subject"`
		Period struct {
			Start string `json:"start"`
		} `json:"period"`
		ServiceProvider struct {
			Reference string `json:"reference"`
		} `json:"serviceProvider"`
		ReasonCode []struct {
			Coding []struct {
				System string `json:"system"`
				Code   string `json:"code"`
			} `json:"coding"`
		} `json:"reasonCode"`
		Extension []extension `json:"extension"`
	}
	if err := json.Unmarshal(pair.Encounter, &enc); err != nil {
		return event.Event{}, fmt.Errorf("%s: not an Encounter: %w", r.Key, err)
	}
	var errs []error
	if _, err := time.Parse(time.RFC3339Nano, enc.Meta.LastUpdated); err != nil {
		errs = append(errs, fmt.Errorf("meta.lastUpdated %q is not an instant", enc.Meta.LastUpdated))
	}
	kind, ok := map[string]string{"AMB": "outpatient", "IMP": "inpatient", "EMER": "emergency", "ACUTE": "inpatient", "OBSENC": "outpatient"}[enc.Class.Code]
	if !ok {
		errs = append(errs, fmt.Errorf("class %q: want AMB, IMP or EMER", enc.Class.Code))
	}
	start, err := time.Parse(time.RFC3339, enc.Period.Start)
	if err != nil {
		errs = append(errs, fmt.Errorf("period.start %q is not a dateTime with a time zone", enc.Period.Start))
	}
	facility, ok := strings.CutPrefix(enc.ServiceProvider.Reference, "Organization/")
	if !ok || facility == "" {
		errs = append(errs, fmt.Errorf("serviceProvider %q: want Organization/<facility code>", enc.ServiceProvider.Reference))
	}
	area := m.Facilities[facility]
	insured := false
	var wait *int
	for _, x := range enc.Extension {
		switch x.URL {
		case AreaExtension:
			if x.ValueString != nil {
				area = *x.ValueString
			} else if x.ValueCode != nil {
				area = *x.ValueCode
			}
		case InsuredExtension:
			insured = x.ValueBoolean != nil && *x.ValueBoolean
		case WaitExtension:
			wait = x.ValueInteger
		}
	}
	if area == "" {
		errs = append(errs, fmt.Errorf("no area: the encounter has no %s extension and facility %q is not in the facility table", AreaExtension, facility))
	}
	var pat struct {
		Gender    string `json:"gender"`
		BirthDate string `json:"birthDate"`
	}
	if len(pair.Patient) > 0 && string(pair.Patient) != "null" {
		_ = json.Unmarshal(pair.Patient, &pat)
	}
	sex := pat.Gender
	if sex == "" {
		sex = "unknown"
	}
	band := "25-44"
	if pat.BirthDate == "" {
		errs = append(errs, fmt.Errorf("subject %q: no included Patient with a birthDate (search with _include=Encounter:subject)", enc.Subject.Reference))
	} else if birth, err := time.Parse("2006-01-02", pat.BirthDate[:min(len(pat.BirthDate), 10)]); err == nil {
		band = AgeBand(birth, start)
	} else if y, err := time.Parse("2006", pat.BirthDate[:min(len(pat.BirthDate), 4)]); err == nil {
		band = AgeBand(y, start)
	} else {
		errs = append(errs, fmt.Errorf("Patient.birthDate %q is not a date", pat.BirthDate))
	}
	if err := errors.Join(errs...); err != nil {
		return event.Event{}, fmt.Errorf("%s: %w", r.Key, err)
	}
	data := map[string]any{"visit_id": enc.ID, "facility_code": facility, "area_code": area, "kind": kind, "age_band": band,
		"sex": sex, "insured": insured, "started_at": start.UTC().Format(time.RFC3339)}
	if wait != nil {
		data["wait_minutes"] = *wait
	}
	for _, rc := range enc.ReasonCode {
		for _, c := range rc.Coding {
			if c.System == ICD10System && c.Code != "" {
				data["icd10"] = c.Code
			}
		}
	}
	if id, ok := strings.CutPrefix(enc.Subject.Reference, "Patient/"); ok && id != "" {
		data["patient_id"] = id
	}
	b, err := json.Marshal(data)
	if err != nil {
		return event.Event{}, err
	}
	return event.Event{Source: FHIRSources + facility, Type: "vn.ioc.health.visit.v1", Subject: facility, Time: start.UTC(), Data: b}, nil
}

// AgeBand is the schema's age band of someone born at birth, at t.
func AgeBand(birth, t time.Time) string {
	age := t.Year() - birth.Year()
	if t.YearDay() < birth.YearDay() {
		age--
	}
	switch {
	case age < 5:
		return "0-4"
	case age < 15:
		return "5-14"
	case age < 25:
		return "15-24"
	case age < 45:
		return "25-44"
	case age < 65:
		return "45-64"
	}
	return "65+"
}
