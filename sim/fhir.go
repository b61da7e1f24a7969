package sim

import (
	"encoding/json"
	"reflect"

	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FHIRServer is a small HL7 FHIR R4 server of a hospital information
// system: Patients and Encounters, and the Encounter search the health
// connector makes (_lastUpdated=ge/gt, _sort=_lastUpdated,_id,
// _include=Encounter:subject, _count, paging by the Bundle's next link).
type FHIRServer struct {
	mu         sync.Mutex
	patients   map[string]map[string]any
	encounters map[string]map[string]any
	down       bool
	// Now stamps meta.lastUpdated; default time.Now. Tests give several
	// encounters the same instant to check ties are neither lost nor doubled.
	Now func() time.Time
}

// PutPatient stores a Patient (a FHIR resource without id: id is given).
func (s *FHIRServer) PutPatient(id string, p map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.patients == nil {
		s.patients = map[string]map[string]any{}
	}
	p = clone(p)
	p["resourceType"], p["id"] = "Patient", id
	s.patients[id] = p
}

// PutEncounter stores a new version of an Encounter, stamping meta.
func (s *FHIRServer) PutEncounter(id string, e map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.encounters == nil {
		s.encounters = map[string]map[string]any{}
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	version := 1
	e = clone(e)
	e["resourceType"], e["id"] = "Encounter", id
	if old, ok := s.encounters[id]; ok {
		prev := clone(old)
		delete(prev, "meta")
		if reflect.DeepEqual(prev, e) {
			return // an update that changes nothing makes no new version (as FHIR servers do)
		}
		v, _ := strconv.Atoi(old["meta"].(map[string]any)["versionId"].(string))
		version = v + 1
	}
	e["meta"] = map[string]any{"versionId": strconv.Itoa(version), "lastUpdated": now().UTC().Format(time.RFC3339Nano)}
	s.encounters[id] = e
}

// SetDown makes the server answer 503.
func (s *FHIRServer) SetDown(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func operationOutcome(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"resourceType": "OperationOutcome",
		"issue": []any{map[string]any{"severity": "error", "code": "processing", "diagnostics": msg}}})
}

// ServeHTTP answers GET [base]/Encounter?… and GET [base]/Patient/<id>.
func (s *FHIRServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		operationOutcome(w, http.StatusServiceUnavailable, "server under maintenance")
		return
	}
	path := r.URL.Path
	if i := strings.LastIndex(path, "/Patient/"); i >= 0 {
		p, ok := s.patients[path[i+len("/Patient/"):]]
		if !ok {
			operationOutcome(w, http.StatusNotFound, "no such Patient")
			return
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		_ = json.NewEncoder(w).Encode(p)
		return
	}
	if !strings.HasSuffix(path, "/Encounter") {
		operationOutcome(w, http.StatusNotFound, "unknown resource")
		return
	}
	q := r.URL.Query()
	type item struct {
		at time.Time
		id string
		e  map[string]any
	}
	var items []item
	for id, e := range s.encounters {
		at, _ := time.Parse(time.RFC3339Nano, e["meta"].(map[string]any)["lastUpdated"].(string))
		items = append(items, item{at, id, e})
	}
	if v := q.Get("_lastUpdated"); v != "" {
		if len(v) < 3 {
			operationOutcome(w, http.StatusBadRequest, "_lastUpdated: want ge<instant> or gt<instant>")
			return
		}
		bound, err := time.Parse(time.RFC3339Nano, v[2:])
		if err != nil {
			operationOutcome(w, http.StatusBadRequest, "_lastUpdated: "+err.Error())
			return
		}
		kept := items[:0]
		for _, it := range items {
			if (v[:2] == "ge" && !it.at.Before(bound)) || (v[:2] == "gt" && it.at.After(bound)) {
				kept = append(kept, it)
			}
		}
		items = kept
	}
	sort.Slice(items, func(i, j int) bool {
		if !items[i].at.Equal(items[j].at) {
			return items[i].at.Before(items[j].at)
		}
		return items[i].id < items[j].id
	})
	count, _ := strconv.Atoi(q.Get("_count"))
	if count <= 0 || count > 500 {
		count = 50
	}
	offset, _ := strconv.Atoi(q.Get("_offset"))
	offset = min(max(offset, 0), len(items))
	end := min(offset+count, len(items))
	var entries []any
	included := map[string]bool{}
	for _, it := range items[offset:end] {
		entries = append(entries, map[string]any{"fullUrl": "Encounter/" + it.id, "resource": it.e, "search": map[string]any{"mode": "match"}})
		if q.Get("_include") == "Encounter:subject" {
			ref, _ := it.e["subject"].(map[string]any)["reference"].(string)
			if p, ok := s.patients[strings.TrimPrefix(ref, "Patient/")]; ok && !included[ref] {
				included[ref] = true
				entries = append(entries, map[string]any{"fullUrl": ref, "resource": p, "search": map[string]any{"mode": "include"}})
			}
		}
	}
	asked, _, _ := strings.Cut(r.RequestURI, "?") // as asked, before any prefix was stripped
	self := "http://" + r.Host + asked + "?" + q.Encode()
	links := []any{map[string]any{"relation": "self", "url": self}}
	if end < len(items) {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("_offset", strconv.Itoa(end))
		links = append(links, map[string]any{"relation": "next", "url": "http://" + r.Host + asked + "?" + nq.Encode()})
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	_ = json.NewEncoder(w).Encode(map[string]any{"resourceType": "Bundle", "type": "searchset", "total": len(items),
		"link": links, "entry": entries})
}

// Encounter builds an Encounter as a HIS records it, for the simulators
// and tests.
func Encounter(class, facility, patient string, start time.Time, wait int, insured bool, icd10 string) map[string]any {
	e := map[string]any{
		"status":          "finished",
		"class":           map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class},
		"subject":         map[string]any{"reference": "Patient/" + patient},
		"period":          map[string]any{"start": start.Format(time.RFC3339)},
		"serviceProvider": map[string]any{"reference": "Organization/" + facility},
		"extension": []any{
			map[string]any{"url": "http://iochub.vn/fhir/StructureDefinition/insured", "valueBoolean": insured},
			map[string]any{"url": "http://iochub.vn/fhir/StructureDefinition/wait-minutes", "valueInteger": wait},
		},
	}
	if icd10 != "" {
		e["reasonCode"] = []any{map[string]any{"coding": []any{map[string]any{"system": "http://hl7.org/fhir/sid/icd-10", "code": icd10}}}}
	}
	return e
}
