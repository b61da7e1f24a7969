package catalogue_test

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/catalogue"
)

func server(t *testing.T) *httptest.Server {
	t.Helper()
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	catalogue.New(reg).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// get answers path without any credential: the catalogue is public.
func get(t *testing.T, srv *httptest.Server, path string, into any) *http.Response {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp
}

// Every type of the registry is listed, with its titles, subject, schema
// (the very file) and personal-data fields with their protection.
func TestEveryTypeIsListedWithItsSchemaAndPersonalData(t *testing.T) {
	srv := server(t)
	var list struct{ Schemas []catalogue.Entry }
	resp := get(t, srv, "/v1/schemas", &list)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/schemas: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	files, _ := fs.Glob(schemas.FS, "*/*.json")
	if len(list.Schemas) != len(files) || len(files) == 0 {
		t.Fatalf("%d types listed, %d schema files", len(list.Schemas), len(files))
	}
	personal := map[string]map[string]string{}
	for _, e := range list.Schemas {
		file, err := fs.ReadFile(schemas.FS, e.Sector+"/"+e.Name+".v"+itoa(e.Version)+".json")
		if err != nil {
			t.Fatalf("%s: no schema file for sector %q name %q version %d", e.Type, e.Sector, e.Name, e.Version)
		}
		var want, got any
		_ = json.Unmarshal(file, &want)
		_ = json.Unmarshal(e.Schema, &got)
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s: the schema served is not the file", e.Type)
		}
		if e.Title.VI == "" || e.Title.EN == "" || e.Description == "" {
			t.Errorf("%s: title %+v, description %q", e.Type, e.Title, e.Description)
		}
		if want := "ioc." + e.Sector + "." + e.Name + ".v" + itoa(e.Version); e.Subject != want || e.Type != "vn."+want {
			t.Errorf("%s: subject %q", e.Type, e.Subject)
		}
		personal[e.Type] = map[string]string{}
		for _, f := range e.PersonalData {
			if f.How == "" {
				t.Errorf("%s %s: no word on how it is protected", e.Type, f.Pointer)
			}
			personal[e.Type][f.Pointer] = f.Protection
		}
	}
	for typ, want := range map[string]map[string]string{
		"vn.ioc.health.visit.v1":          {"/patient_id": "pseudonymize"},
		"vn.ioc.feedback.report.v1":       {"/reporter_name": "drop", "/reporter_phone": "pseudonymize"},
		"vn.ioc.publicservice.dossier.v1": {"/applicant_id_number": "pseudonymize", "/applicant_name": "drop"},
		"vn.ioc.traffic.incident.v1":      {"/reporter_phone": "pseudonymize"},
		"vn.ioc.traffic.flow.v1":          {},
	} {
		if !reflect.DeepEqual(personal[typ], want) {
			t.Errorf("%s: personal data %v, want %v", typ, personal[typ], want)
		}
	}
}

func TestOneType(t *testing.T) {
	srv := server(t)
	for _, tt := range []struct {
		path   string
		status int
		want   string // the type, or the problem type
	}{
		{"/v1/schemas/vn.ioc.health.visit.v1", http.StatusOK, "vn.ioc.health.visit.v1"},
		{"/v1/schemas/vn.ioc.traffic.incident.v1", http.StatusOK, "vn.ioc.traffic.incident.v1"},
		{"/v1/schemas/vn.ioc.health.visit.v9", http.StatusNotFound, catalogue.ProblemUnknownType},
		{"/v1/schemas/" + strings.Repeat("x", 500), http.StatusNotFound, catalogue.ProblemUnknownType},
	} {
		var body struct {
			Type, Detail string
			Title        json.RawMessage
		}
		resp := get(t, srv, tt.path, &body)
		if resp.StatusCode != tt.status || body.Type != tt.want {
			t.Errorf("GET %s: %d %q, want %d %q", tt.path[:min(60, len(tt.path))], resp.StatusCode, body.Type, tt.status, tt.want)
		}
		if tt.status == http.StatusNotFound {
			if resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(body.Detail, "GET /v1/schemas") || len(body.Detail) > 300 {
				t.Errorf("GET %s: problem %q (%s)", tt.path[:min(60, len(tt.path))], body.Detail, resp.Header.Get("Content-Type"))
			}
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
