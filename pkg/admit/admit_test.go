package admit_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iochub/iochub/pkg/admit"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
)

func setup(t *testing.T) (*schema.Registry, *pii.Pseudonymizer, event.Event) {
	t.Helper()
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := pii.New([]byte("admit-test-key-0123456789abcdef0123"))
	b, _ := fs.ReadFile(schemas.Examples, "health/examples/visit.v1.valid.json")
	var evs []event.Event
	if err := json.Unmarshal(b, &evs); err != nil {
		t.Fatal(err)
	}
	return reg, p, evs[0]
}

func patient(t *testing.T, data []byte) string {
	t.Helper()
	var d map[string]any
	_ = json.Unmarshal(data, &d)
	s, _ := d["patient_id"].(string)
	return s
}

// Admitted once, read back marked, rechecked as a replay: the pseudonym is
// never checked against the clear value's rules nor hashed again.
func TestClearThenMarkedHashesOnce(t *testing.T) {
	reg, p, ev := setup(t)
	a := admit.New(reg, p, 0)
	clear := patient(t, ev.Data)
	ad, err := a.Clear(ev)
	if err != nil {
		t.Fatal(err)
	}
	if got := patient(t, ad.Event.Data); got != p.Hash(clear) {
		t.Fatalf("patient_id %q, want its pseudonym", got)
	}
	m, err := a.Msg(ad)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(natsjs.HeaderPseudonymized) != admit.Mark || m.Header.Get(jetstream.MsgIDHeader) != ev.DedupID() || m.Subject != "ioc.health.visit.v1" {
		t.Fatalf("message %s %v", m.Subject, m.Header)
	}
	back, marked, err := admit.FromMsg(m.Header, m.Data)
	if err != nil || !marked {
		t.Fatalf("FromMsg: marked %v, %v", marked, err)
	}
	again, err := a.Marked(back, true)
	if err != nil {
		t.Fatalf("recheck of a marked event: %v (its pseudonymized field was checked against the clear value's rules)", err)
	}
	if got := patient(t, again.Event.Data); got != p.Hash(clear) {
		t.Fatalf("after Marked: %q, want the pseudonym unchanged", got)
	}
	// A recheck still refuses a field that is not personal data.
	var d map[string]any
	_ = json.Unmarshal(back.Data, &d)
	d["kind"] = "telehealth"
	back.Data, _ = json.Marshal(d)
	var ve *schema.ValidationError
	if _, err := a.Marked(back, true); !errors.As(err, &ve) || !strings.Contains(err.Error(), "/kind") {
		t.Fatalf("recheck with a bad kind: %v", err)
	}
}

func TestClearRefuses(t *testing.T) {
	reg, p, ev := setup(t)
	unknown := ev
	unknown.Type = "vn.ioc.health.nothing.v1"
	bad := ev
	bad.Data = json.RawMessage(`{"kind":"telehealth"}`)
	for _, tc := range []struct {
		name string
		a    *admit.Admitter
		ev   event.Event
		want func(error) bool
	}{
		{"unknown type", admit.New(reg, p, 0), unknown, func(err error) bool { return errors.Is(err, schema.ErrUnknownType) }},
		{"invalid data", admit.New(reg, p, 0), bad, func(err error) bool { var ve *schema.ValidationError; return errors.As(err, &ve) }},
		{"no key for personal data", admit.New(reg, nil, 0), ev, func(err error) bool { return errors.Is(err, admit.ErrNoKey) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.a.Clear(tc.ev); !tc.want(err) {
				t.Fatalf("Clear: %v", err)
			}
		})
	}
	ad, err := admit.New(reg, p, 100).Clear(ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admit.New(reg, p, 100).Msg(ad); !errors.Is(err, admit.ErrTooLarge) {
		t.Fatalf("Msg over the size limit: %v", err)
	}
}

func TestFromMsgModes(t *testing.T) {
	structured := nats.Header{"Content-Type": {"application/cloudevents+json; charset=utf-8"}}
	binary := nats.Header{"ce-specversion": {"1.0"}, "ce-id": {"x"}, "ce-source": {"/s"}, "ce-type": {"vn.ioc.health.visit.v1"}, "ce-time": {"2026-11-20T08:00:00Z"}}
	doc := []byte(`{"specversion":"1.0","id":"x","source":"/s","type":"vn.ioc.health.visit.v1","time":"2026-11-20T08:00:00Z","data":{"a":1}}`)
	for _, tc := range []struct {
		name string
		h    nats.Header
		data []byte
	}{
		{"structured with content-type", structured, doc},
		{"structured without headers (the hub's own)", nats.Header{}, doc},
		{"binary", binary, []byte(`{"a":1}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, marked, err := admit.FromMsg(tc.h, tc.data)
			if err != nil || marked || e.ID != "x" || string(e.Data) != `{"a":1}` {
				t.Fatalf("FromMsg = %+v, %v, %v", e, marked, err)
			}
		})
	}
}
