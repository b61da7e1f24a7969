package catalogue_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/catalogue"
	"github.com/iochub/iochub/services/catalogue/cataloguetest"
)

func decoded(t *testing.T, b []byte) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The AsyncAPI document is valid AsyncAPI 3.0.0 (the specification's own
// JSON Schema, from @asyncapi/specs: cataloguetest), has one channel per type of the
// registry at its NATS subject, and its message payloads take every valid
// example event and refuse every example whose data its type refuses.
func TestAsyncAPIIsValidAndHasEveryChannel(t *testing.T) {
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := catalogue.New(reg).AsyncAPI(catalogue.Info{Version: "test", NATS: "127.0.0.1:4222"})
	if err != nil {
		t.Fatal(err)
	}
	cataloguetest.Validate(t, cataloguetest.AsyncAPI30, doc)
	var d struct {
		Channels   map[string]struct{ Address string }
		Components struct {
			Messages map[string]struct{ Payload json.RawMessage }
		}
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	addresses := map[string]bool{}
	for _, ch := range d.Channels {
		addresses[ch.Address] = true
	}
	if len(d.Channels) != len(reg.Types())+1 {
		t.Errorf("%d channels for %d types and the agencies' subscriptions", len(d.Channels), len(reg.Types()))
	}
	if got, want := d.Channels[catalogue.ShareChannel].Address, natsjs.ShareSubject("{agency}", "{subscription}"); got != want {
		t.Errorf("the subscriptions' channel is at %q, the hub sends to %q", got, want)
	}
	payloads := map[string]*jsonschema.Schema{}
	for _, ty := range reg.Types() {
		if !addresses[ty.Name.Subject()] {
			t.Errorf("no channel at %s", ty.Name.Subject())
		}
		m, ok := d.Components.Messages[ty.Name.String()]
		if !ok {
			t.Fatalf("no message for %s", ty.Name)
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft7) // AsyncAPI's schema dialect
		c.AssertFormat()
		if err := c.AddResource("file:///payload.json", decoded(t, m.Payload)); err != nil {
			t.Fatal(err)
		}
		if payloads[ty.Name.String()], err = c.Compile("file:///payload.json"); err != nil {
			t.Fatalf("%s payload: %v", ty.Name, err)
		}
	}

	files, _ := fs.Glob(schemas.Examples, "*/examples/*.json")
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".want.json") {
			continue
		}
		b, _ := fs.ReadFile(schemas.Examples, f)
		var evs []json.RawMessage
		if err := json.Unmarshal(b, &evs); err != nil {
			t.Fatal(err)
		}
		for _, raw := range evs {
			var env struct {
				Type string
				Data json.RawMessage
			}
			_ = json.Unmarshal(raw, &env)
			ty, err := reg.Lookup(env.Type)
			if err != nil {
				continue // an example of an unknown type
			}
			data, _ := schema.DecodeData(env.Data)
			dataOK := ty.Validate(data) == nil
			err = payloads[env.Type].Validate(decoded(t, raw))
			switch {
			case strings.HasSuffix(f, ".valid.json") && err != nil:
				t.Errorf("%s: a valid example refused by the AsyncAPI payload: %v", f, err)
			case !dataOK && err == nil:
				t.Errorf("%s: data its type refuses taken by the AsyncAPI payload: %s", f, env.Data)
			}
			checked++
		}
	}
	if checked < 20 {
		t.Fatalf("only %d examples checked", checked)
	}
}
