// Package admit is the one place where an event is admitted into the hub:
// its clear data validated against its type's schema, its personal data
// pseudonymized or dropped, the envelope encoded, and the message marked as
// admitted. The gateway, the connectors' runner, the aggregator (for events
// published straight onto NATS, unmarked) and dead-letter replay all use it.
package admit

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"mime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
)

// Mark is the value of natsjs.HeaderPseudonymized on an admitted event: its
// data was validated in clear and pseudonymized with the hub's key.
const Mark = "hmac-sha256"

// ErrTooLarge is matched when the encoded event is over the size limit.
var ErrTooLarge = errors.New("event too large")

// ErrNoKey is matched when an event has personal data to pseudonymize and
// the admitter has no key.
var ErrNoKey = errors.New("admit: no personal-data key")

// Window is the span of time an event's time must fall in: not before
// NotBefore, not more than Ahead after now. The date-time and date fields
// of its data must not be before NotBefore nor from DataUntil on (a due date
// may rightly be ahead of now). It keeps impossible times (1900, 1970 from a
// zeroed clock, 2200) out of ClickHouse, whose DateTime cannot hold them and
// whose partitions they would multiply.
type Window struct {
	NotBefore time.Time
	Ahead     time.Duration
}

// DefaultWindow: from 2000 to a day ahead of now.
var DefaultWindow = Window{NotBefore: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), Ahead: 24 * time.Hour}

// DataUntil bounds the date-time fields of data: ClickHouse's DateTime ends
// in 2106.
var DataUntil = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

// check names the problem of t against the window at now, or "".
func (w Window) check(t, now time.Time) string {
	switch {
	case t.Before(w.NotBefore):
		return fmt.Sprintf("%s is before %s, the earliest time accepted", t.Format(time.RFC3339), w.NotBefore.Format(time.RFC3339))
	case t.After(now.Add(w.Ahead)):
		return fmt.Sprintf("%s is more than %s ahead of now", t.Format(time.RFC3339), w.Ahead)
	}
	return ""
}

// Admitter admits events. Safe for concurrent use.
type Admitter struct {
	reg      *schema.Registry
	pseudo   *pii.Pseudonymizer
	maxBytes int
	seals    *sync.Pool // HMAC-SHA256 under the seal key; nil without a key
	window   Window
	now      func() time.Time
}

// New returns an Admitter; maxEventBytes bounds an encoded event (0: no
// bound). Without pseudo it can neither pseudonymize nor seal: what it
// encodes is admitted again by the aggregator.
func New(reg *schema.Registry, pseudo *pii.Pseudonymizer, maxEventBytes int) *Admitter {
	a := &Admitter{reg: reg, pseudo: pseudo, maxBytes: maxEventBytes, window: DefaultWindow, now: time.Now}
	if pseudo != nil {
		key := pseudo.Derive("admit-seal-v1")
		a.seals = &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}
	}
	return a
}

// seal is the seal of a message on subject with body, or "" without a key.
func (a *Admitter) seal(subject string, body []byte) string {
	if a.seals == nil {
		return ""
	}
	h := a.seals.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(subject))
	h.Write([]byte{0})
	h.Write(body)
	sum := h.Sum(nil)
	a.seals.Put(h)
	return "v1:" + base64.RawURLEncoding.EncodeToString(sum)
}

// CanSeal reports whether the admitter holds the hub's key.
func (a *Admitter) CanSeal() bool { return a.seals != nil }

// Seal marks m as admitted by the hub, sealing its subject and body. Only
// for a message the hub did admit.
func (a *Admitter) Seal(m *nats.Msg) {
	if seal := a.seal(m.Subject, m.Data); seal != "" {
		m.Header.Set(natsjs.HeaderPseudonymized, Mark)
		m.Header.Set(natsjs.HeaderAdmitSeal, seal)
	}
}

// Sealed reports whether a message carries the hub's mark and a seal that
// verifies: the hub admitted it, and neither its subject nor its body was
// changed since. A header alone proves nothing: anyone who may publish on
// NATS can set one.
func (a *Admitter) Sealed(subject string, h nats.Header, body []byte) bool {
	if h.Get(natsjs.HeaderPseudonymized) != Mark {
		return false
	}
	want := a.seal(subject, body)
	got := h.Get(natsjs.HeaderAdmitSeal)
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// Redacted is what the dead letter of an event the hub did not admit (one
// published in clear straight onto NATS) keeps: the event with its
// personal-data fields pseudonymized or dropped, as admitting it would
// have done, marked and sealed as pseudonymized so that a replay does not
// hash them again. An event whose type is unknown or whose data does not
// decode keeps its envelope and no data. The error says the message is not
// an event at all: keep nothing of it.
func (a *Admitter) Redacted(h nats.Header, body []byte) (*nats.Msg, error) {
	e, _, err := FromMsg(h, body)
	if err != nil {
		return nil, err
	}
	ty, err := a.reg.Lookup(e.Type)
	var data any
	if err == nil {
		data, err = schema.DecodeEventData(e)
	}
	switch {
	case err != nil || (len(ty.PII) > 0 && a.pseudo == nil):
		e.Data = nil
	case len(ty.PII) > 0 && a.pseudo.Apply(ty, data):
		if e.Data, err = event.AppendValue(make([]byte, 0, len(e.Data)+64), data); err != nil {
			e.Data = nil
		}
	}
	m, err := natsjs.EventMsg(e, e.AppendJSON(nil))
	if err != nil {
		return nil, err
	}
	a.Seal(m)
	return m, nil
}

// Registry is the schema registry events are admitted against.
func (a *Admitter) Registry() *schema.Registry { return a.reg }

// Admitted is an event ready for IOC_EVENTS, or read back from it.
type Admitted struct {
	Event event.Event // Data pseudonymized
	Type  *schema.Type
	Data  any // Event.Data decoded
}

// Clear admits an event whose data is in clear: its type must be known
// (schema.ErrUnknownType), its data valid (*schema.ValidationError); personal
// data is then pseudonymized or dropped.
func (a *Admitter) Clear(e event.Event) (Admitted, error) {
	ty, data, err := a.Validate(e)
	if err != nil {
		return Admitted{}, err
	}
	if err := a.inWindow(e, ty, data); err != nil {
		return Admitted{}, err
	}
	if len(ty.PII) > 0 && a.pseudo == nil {
		return Admitted{}, fmt.Errorf("%w to pseudonymize %s", ErrNoKey, e.Type)
	}
	if len(ty.PII) > 0 && a.pseudo.Apply(ty, data) {
		if e.Data, err = event.AppendValue(make([]byte, 0, len(e.Data)+64), data); err != nil {
			return Admitted{}, fmt.Errorf("data: %w", err)
		}
	}
	if e.DataContentType == "" {
		e.DataContentType = event.ContentTypeJSON
	}
	return Admitted{Event: e, Type: ty, Data: data}, nil
}

// Validate checks an event whose data is in clear, changing nothing: its
// type, and its data against the schema.
func (a *Admitter) Validate(e event.Event) (*schema.Type, any, error) {
	ty, err := a.reg.Lookup(e.Type)
	if err != nil {
		return nil, nil, err
	}
	if err := ty.CheckSubject(e.Subject); err != nil {
		return nil, nil, err
	}
	data, err := schema.DecodeEventData(e)
	if err != nil {
		return nil, nil, fmt.Errorf("data: %w", err)
	}
	if err := ty.Validate(data); err != nil {
		return nil, nil, err
	}
	return ty, data, nil
}

// inWindow checks the event's time (an *event.AttributeError) and every
// date-time and date field of its data (a *schema.ValidationError, rule
// range) against the window, and that every number fits its column (rule
// range too): a 202 means the row will be stored.
func (a *Admitter) inWindow(e event.Event, ty *schema.Type, data any) error {
	now := a.now()
	if why := a.window.check(e.Time, now); why != "" {
		return &event.AttributeError{Attribute: "time", Problem: why, Rule: event.RuleRange}
	}
	var out []schema.Violation
	for _, c := range ty.Columns {
		if c.Kind == schema.KindInt || c.Kind == schema.KindFloat {
			if v := schema.ValueAt(data, c.Path); v != nil {
				if err := numberFits(c.Kind, v); err != nil {
					out = append(out, schema.Violation{Pointer: "/" + strings.Join(c.Path, "/"), Rule: event.RuleRange, Message: err.Error()})
				}
			}
			continue
		}
		if c.Kind != schema.KindDateTime && c.Kind != schema.KindDate {
			continue
		}
		v, ok := schema.ValueAt(data, c.Path).(string)
		if !ok {
			continue
		}
		layout := time.RFC3339
		if c.Kind == schema.KindDate {
			layout = time.DateOnly
		}
		t, err := time.Parse(layout, v)
		if err != nil {
			continue // the schema's format check names it
		}
		why := ""
		switch {
		case t.Before(a.window.NotBefore):
			why = fmt.Sprintf("%s is before %s, the earliest time accepted", v, a.window.NotBefore.Format(time.RFC3339))
		case !t.Before(DataUntil):
			why = fmt.Sprintf("%s is not before %s, the latest time stored", v, DataUntil.Format(time.RFC3339))
		}
		if why != "" {
			out = append(out, schema.Violation{Pointer: "/" + strings.Join(c.Path, "/"), Rule: event.RuleRange, Message: why})
		}
	}
	if len(out) > 0 {
		return &schema.ValidationError{Type: e.Type, Violations: out}
	}
	return nil
}

// numberFits says whether v can be stored in a column of kind k.
func numberFits(k schema.Kind, v any) error {
	var err error
	if k == schema.KindInt {
		_, err = schema.Int64(v)
	} else {
		_, err = schema.Float64(v)
	}
	return err
}

// Marked takes back an event the hub admitted before: its data is already
// pseudonymized and is not pseudonymized again. With recheck (a dead letter
// replayed after a schema fix) the data is validated against the current
// schema, except the personal-data fields, which were checked in clear when
// the event was admitted and now hold pseudonyms.
func (a *Admitter) Marked(e event.Event, recheck bool) (Admitted, error) {
	ty, err := a.reg.Lookup(e.Type)
	if err != nil {
		return Admitted{}, err
	}
	data, err := schema.DecodeEventData(e)
	if err != nil {
		return Admitted{}, fmt.Errorf("data: %w", err)
	}
	if recheck {
		if err := validateBesidesPII(ty, data); err != nil {
			return Admitted{}, err
		}
	}
	return Admitted{Event: e, Type: ty, Data: data}, nil
}

func validateBesidesPII(ty *schema.Type, data any) error {
	err := ty.Validate(data)
	var ve *schema.ValidationError
	if err == nil || len(ty.PII) == 0 || !errors.As(err, &ve) {
		return err
	}
	var ptrs []string
	for _, f := range ty.PII {
		ptrs = append(ptrs, "/"+strings.Join(f.Path, "/"))
	}
	kept := slices.DeleteFunc(slices.Clone(ve.Violations), func(v schema.Violation) bool { return slices.Contains(ptrs, v.Pointer) })
	if len(kept) == 0 {
		return nil
	}
	return &schema.ValidationError{Type: ve.Type, Violations: kept}
}

// Msg encodes the admitted event for IOC_EVENTS: the CloudEvents JSON on its
// type's subject, Nats-Msg-Id its identity, and the mark.
func (a *Admitter) Msg(ad Admitted) (*nats.Msg, error) {
	body := ad.Event.AppendJSON(make([]byte, 0, len(ad.Event.Data)+256))
	if a.maxBytes > 0 && len(body) > a.maxBytes {
		return nil, fmt.Errorf("%w: the event is %d bytes, the limit is %d", ErrTooLarge, len(body), a.maxBytes)
	}
	m, err := natsjs.EventMsg(ad.Event, body)
	if err != nil {
		return nil, err
	}
	a.Seal(m)
	return m, nil
}

// FromMsg reads the event of a message on IOC_EVENTS in either content mode
// of the CloudEvents NATS binding: structured (content-type
// application/cloudevents…, §3.2: the JSON event format as payload) or
// binary (§3.1: ce-* headers, the data as payload). marked reports whether
// the message claims the hub admitted it (natsjs.HeaderPseudonymized): a
// claim only Sealed proves.
func FromMsg(h nats.Header, data []byte) (e event.Event, marked bool, err error) {
	marked = h.Get(natsjs.HeaderPseudonymized) == Mark
	ct := headerFold(h, "content-type")
	mt, _, _ := mime.ParseMediaType(ct)
	if strings.HasPrefix(strings.ToLower(mt), "application/cloudevents") || (ct == "" && headerFold(h, "ce-specversion") == "") {
		e, err = event.Parse(data)
		return e, marked, err
	}
	e, err = event.FromBinary(h, "", data)
	return e, marked, err
}

// headerFold is the first value of a header named name in any case (NATS
// header names are case-insensitive per the binding, but nats.Header is a
// plain map).
func headerFold(h nats.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}
