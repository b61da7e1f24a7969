package sharing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/admit"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
)

// Bucket is the JetStream KV bucket of the subscriptions.
const Bucket = "IOC_SUBSCRIPTIONS"

// ConsumerPrefix starts the name of each subscription's durable consumer on
// IOC_EVENTS.
const ConsumerPrefix = "sub-"

// Problem types of the sharing API.
const (
	ProblemNotGranted   = "urn:iochub:problem:not-granted"
	ProblemBadRequest   = "urn:iochub:problem:bad-subscription"
	ProblemNotFound     = "urn:iochub:problem:unknown-subscription"
	ProblemConflict     = "urn:iochub:problem:subscription-exists"
	ProblemForbidden    = httpedge.ProblemForbidden
	ProblemUnavailable  = httpedge.ProblemUnavailable
	defaultAckWait      = 60 * time.Second
	maxPull, defaultMax = 1000, 100
	maxWait             = 25 * time.Second
)

// Subscription is an agency's standing request for events, stored in
// Bucket under its name.
type Subscription struct {
	Name          string    `json:"name"`
	Agency        string    `json:"agency"`
	Types         []string  `json:"types"`                    // event types, or prefixes ending in *
	Areas         []string  `json:"areas,omitempty"`          // only events within these areas; empty: all the grants cover
	SubjectPrefix string    `json:"subject_prefix,omitempty"` // only events whose subject starts so
	Start         string    `json:"start"`                    // "now", "beginning" (of retention) or an RFC 3339 time
	Mode          string    `json:"mode"`                     // "pull"
	Created       time.Time `json:"created"`
}

var subscriptionName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Service serves the agencies' subscriptions and pulls.
type Service struct {
	js       jetstream.JetStream
	kv       jetstream.KeyValue
	agencies *httpedge.Keyring[*Agency]
	reg      *schema.Registry
	areas    Areas
	adm      *admit.Admitter
	log      *zap.Logger
	unsealed uint64 // events stored before the hub sealed its marks

	mu    sync.Mutex
	pulls map[string]*pull // by subscription
}

// pull is a subscription's messages sent and not yet confirmed.
type pull struct {
	sync.Mutex
	held []jetstream.Msg
	sent [][]byte // the events as sent, sent again until confirmed
	seqs []uint64
}

// New declares Bucket and builds the service. cfg must have passed Validate.
func New(ctx context.Context, cfg Config, js jetstream.JetStream, reg *schema.Registry, areas Areas, adm *admit.Admitter, log *zap.Logger) (*Service, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: Bucket, Storage: jetstream.FileStorage,
		Description: "iochub: the agencies' subscriptions"})
	if err != nil {
		return nil, fmt.Errorf("sharing: bucket %s: %w", Bucket, err)
	}
	unsealed, err := natsjs.UnsealedUntil(ctx, js)
	if err != nil {
		return nil, fmt.Errorf("sharing: %w", err)
	}
	agencies := make([]*Agency, len(cfg.Agencies))
	for i := range cfg.Agencies {
		agencies[i] = &cfg.Agencies[i]
	}
	return &Service{js: js, kv: kv, reg: reg, areas: areas, adm: adm, log: log, unsealed: unsealed, pulls: map[string]*pull{},
		agencies: httpedge.NewKeyring("agency", agencies, func(a *Agency) string { return a.TokenSHA256 })}, nil
}

// Register mounts the sharing API on mux.
func (s *Service) Register(mux httpedge.Router) {
	mux.HandleFunc("GET /v1/subscriptions", s.agencies.Require(s.list))
	mux.HandleFunc("PUT /v1/subscriptions/{name}", s.agencies.Require(s.put))
	mux.HandleFunc("GET /v1/subscriptions/{name}", s.agencies.Require(s.get))
	mux.HandleFunc("DELETE /v1/subscriptions/{name}", s.agencies.Require(s.delete))
	mux.HandleFunc("GET /v1/subscriptions/{name}/events", s.agencies.Require(s.events))
}

func (s *Service) knownTypes() []string {
	var out []string
	for _, t := range s.reg.Types() {
		out = append(out, t.Name.String())
	}
	return out
}

func (s *Service) put(w http.ResponseWriter, r *http.Request, a *Agency) {
	name := r.PathValue("name")
	if !subscriptionName.MatchString(name) {
		bad(w, "name: lower-case letters, digits and '-', at most 63")
		return
	}
	var sub Subscription
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sub); err != nil {
		bad(w, "body: want {\"types\": [...], \"areas\": [...], \"subject_prefix\": \"...\", \"start\": \"now|beginning|<RFC 3339>\", \"mode\": \"pull\"}: "+err.Error())
		return
	}
	sub.Name, sub.Agency = name, a.Name
	if sub.Mode == "" {
		sub.Mode = "pull"
	}
	if sub.Start == "" {
		sub.Start = "now"
	}
	start, err := s.validate(&sub)
	if err != nil {
		bad(w, err.Error())
		return
	}
	if err := a.Check(sub.Types, sub.Areas, s.knownTypes(), s.areas); err != nil {
		var ne *NotGrantedError
		errors.As(err, &ne)
		httpedge.WriteProblem(w, http.StatusForbidden, notGrantedProblem{
			Problem:    httpedge.Problem{Type: ProblemNotGranted, Title: "Not granted", Status: http.StatusForbidden, Detail: err.Error()},
			NotGranted: ne,
		})
		return
	}
	ctx := r.Context()
	if old, err := s.load(ctx, name); err == nil {
		if old.Agency != a.Name || !sameSpec(*old, sub) {
			problem(w, http.StatusConflict, ProblemConflict, "Subscription exists", "a subscription named "+name+" exists with another agency or another spec; delete it first, or choose another name")
			return
		}
		httpedge.WriteJSON(w, http.StatusOK, old)
		return
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		s.unavailable(w, err)
		return
	}
	sub.Created = time.Now().UTC()
	cfg := jetstream.ConsumerConfig{Durable: ConsumerPrefix + name, Description: "iochub subscription " + name + " of " + a.Name,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: defaultAckWait, MaxAckPending: 10 * maxPull, MaxDeliver: -1,
		FilterSubjects: subjects(sub.Types, s.knownTypes())}
	switch {
	case sub.Start == "beginning":
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case sub.Start == "now":
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	default:
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	if _, err := s.js.CreateOrUpdateConsumer(ctx, natsjs.EventsStream, cfg); err != nil {
		s.unavailable(w, err)
		return
	}
	b, _ := json.Marshal(sub)
	if _, err := s.kv.Put(ctx, name, b); err != nil {
		s.unavailable(w, err)
		return
	}
	s.log.Info("subscription created", zap.String("subscription", name), zap.String("agency", a.Name), zap.Strings("types", sub.Types))
	httpedge.WriteJSON(w, http.StatusCreated, sub)
}

func (s *Service) validate(sub *Subscription) (time.Time, error) {
	if len(sub.Types) == 0 || slices.Contains(sub.Types, "") {
		return time.Time{}, errors.New("types: name at least one event type (or a prefix ending in *)")
	}
	if sub.Mode != "pull" {
		return time.Time{}, fmt.Errorf("mode %q: only pull is served", sub.Mode)
	}
	for _, ar := range sub.Areas {
		if ar == "" {
			return time.Time{}, errors.New("areas: an empty area code")
		}
	}
	switch sub.Start {
	case "now", "beginning":
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, sub.Start)
	if err != nil {
		return time.Time{}, fmt.Errorf("start %q: want now, beginning or an RFC 3339 time", sub.Start)
	}
	return t, nil
}

func sameSpec(a, b Subscription) bool {
	return slices.Equal(a.Types, b.Types) && slices.Equal(a.Areas, b.Areas) && a.SubjectPrefix == b.SubjectPrefix && a.Start == b.Start && a.Mode == b.Mode
}

// subjects are the NATS subjects of the types patterns match.
func subjects(patterns, known []string) []string {
	var out []string
	for _, t := range expand(patterns, known) {
		if tn, err := event.ParseType(t); err == nil {
			out = append(out, tn.Subject())
		}
	}
	return out
}

func (s *Service) load(ctx context.Context, name string) (*Subscription, error) {
	e, err := s.kv.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	var sub Subscription
	if err := json.Unmarshal(e.Value(), &sub); err != nil {
		return nil, fmt.Errorf("subscription %s: %w", name, err)
	}
	return &sub, nil
}

// own is the agency's subscription of the request, or a problem answered.
func (s *Service) own(w http.ResponseWriter, r *http.Request, a *Agency) *Subscription {
	name := r.PathValue("name")
	sub, err := s.load(r.Context(), name)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrInvalidKey):
		problem(w, http.StatusNotFound, ProblemNotFound, "Unknown subscription", "no subscription is called "+strings.ToValidUTF8(name, "?"))
		return nil
	case err != nil:
		s.unavailable(w, err)
		return nil
	case sub.Agency != a.Name:
		problem(w, http.StatusForbidden, ProblemForbidden, "Not your subscription", "subscription "+name+" is another agency's")
		return nil
	}
	return sub
}

func (s *Service) get(w http.ResponseWriter, r *http.Request, a *Agency) {
	if sub := s.own(w, r, a); sub != nil {
		httpedge.WriteJSON(w, http.StatusOK, sub)
	}
}

func (s *Service) list(w http.ResponseWriter, r *http.Request, a *Agency) {
	out := []Subscription{}
	keys, err := s.kv.ListKeys(r.Context())
	if err != nil {
		s.unavailable(w, err)
		return
	}
	for k := range keys.Keys() {
		if sub, err := s.load(r.Context(), k); err == nil && sub.Agency == a.Name {
			out = append(out, *sub)
		}
	}
	httpedge.WriteJSON(w, http.StatusOK, map[string]any{"subscriptions": out})
}

func (s *Service) delete(w http.ResponseWriter, r *http.Request, a *Agency) {
	sub := s.own(w, r, a)
	if sub == nil {
		return
	}
	if err := s.js.DeleteConsumer(r.Context(), natsjs.EventsStream, ConsumerPrefix+sub.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.unavailable(w, err)
		return
	}
	if err := s.kv.Delete(r.Context(), sub.Name); err != nil {
		s.unavailable(w, err)
		return
	}
	s.mu.Lock()
	delete(s.pulls, sub.Name)
	s.mu.Unlock()
	httpedge.WriteJSON(w, http.StatusOK, map[string]any{"deleted": sub.Name})
}

// Pulled is the answer of GET /v1/subscriptions/{name}/events.
type Pulled struct {
	Events  []json.RawMessage `json:"events"`  // CloudEvents, JSON format, id and source as stored
	Cursor  string            `json:"cursor"`  // send it as after= on the next call to confirm these events
	Pending uint64            `json:"pending"` // events on the log not yet looked at for this subscription
}

// events answers a pull: events confirmed by after are acked; events sent
// before and not confirmed are sent again; else up to max new ones,
// waiting up to wait for the first.
func (s *Service) events(w http.ResponseWriter, r *http.Request, a *Agency) {
	sub := s.own(w, r, a)
	if sub == nil {
		return
	}
	q := r.URL.Query()
	after, err := uintParam(q.Get("after"), 0, 1<<63)
	if err != nil {
		bad(w, "after: want the cursor of the previous answer")
		return
	}
	max, err := uintParam(q.Get("max"), defaultMax, maxPull)
	if err != nil || max == 0 {
		bad(w, fmt.Sprintf("max: want 1 to %d", maxPull))
		return
	}
	waitS, err := uintParam(q.Get("wait"), 20, uint64(maxWait/time.Second))
	if err != nil {
		bad(w, fmt.Sprintf("wait: want 0 to %d seconds", maxWait/time.Second))
		return
	}
	s.mu.Lock()
	p := s.pulls[sub.Name]
	if p == nil {
		p = &pull{}
		s.pulls[sub.Name] = p
	}
	s.mu.Unlock()
	p.Lock() // one pull of a subscription at a time
	defer p.Unlock()

	// Confirmed: ack every held message up to after.
	for len(p.held) > 0 && p.seqs[0] <= after {
		_ = p.held[0].Ack()
		p.held, p.sent, p.seqs = p.held[1:], p.sent[1:], p.seqs[1:]
	}
	ctx := r.Context()
	cons, err := s.js.Consumer(ctx, natsjs.EventsStream, ConsumerPrefix+sub.Name)
	if err != nil {
		s.unavailable(w, err)
		return
	}
	if len(p.held) == 0 {
		wait := time.Duration(waitS) * time.Second
		var batch jetstream.MessageBatch
		if wait == 0 {
			batch, err = cons.FetchNoWait(int(max))
		} else {
			batch, err = cons.Fetch(int(max), jetstream.FetchMaxWait(wait))
		}
		if err != nil {
			s.unavailable(w, err)
			return
		}
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			body, ok := s.deliverable(m, meta.Sequence.Stream, a, sub)
			if !ok {
				_ = m.Ack() // not for this subscription: looked at, settled
				continue
			}
			p.held, p.sent, p.seqs = append(p.held, m), append(p.sent, body), append(p.seqs, meta.Sequence.Stream)
		}
	}
	out := Pulled{Events: []json.RawMessage{}, Cursor: strconv.FormatUint(after, 10)}
	for i, b := range p.sent {
		out.Events = append(out.Events, b)
		out.Cursor = strconv.FormatUint(p.seqs[i], 10)
	}
	if info, err := cons.Info(ctx); err == nil {
		out.Pending = info.NumPending
	}
	httpedge.WriteJSON(w, http.StatusOK, out)
}

// deliverable is the event of m as agency a receives it through sub, or
// false when it is not for them: outside the grants or the subscription's
// filters, or not an event the hub stores (the aggregator dead-letters
// those). Personal data leaves only pseudonymized, or not at all.
func (s *Service) deliverable(m jetstream.Msg, seq uint64, a *Agency, sub *Subscription) ([]byte, bool) {
	e, _, err := admit.FromMsg(m.Headers(), m.Data())
	if err != nil {
		return nil, false
	}
	var ad admit.Admitted
	if seq <= s.unsealed || s.adm.Sealed(m.Subject(), m.Headers(), m.Data()) {
		ad, err = s.adm.Marked(e, false) // pseudonymized when it was admitted
	} else {
		ad, err = s.adm.Clear(e) // published in clear: validated and pseudonymized here
	}
	if err != nil {
		return nil, false
	}
	obj, _ := ad.Data.(map[string]any)
	area, _ := obj["area_code"].(string)
	ok, drop := a.Allows(ad.Event.Type, area, s.areas)
	if !ok || !strings.HasPrefix(ad.Event.Subject, sub.SubjectPrefix) {
		return nil, false
	}
	if len(sub.Areas) > 0 && !slices.ContainsFunc(sub.Areas, func(ar string) bool { return s.areas.Within(area, ar) }) {
		return nil, false
	}
	if drop && pii.Drop(ad.Type, ad.Data) {
		if ad.Event.Data, err = event.AppendValue(nil, ad.Data); err != nil {
			return nil, false
		}
	}
	return ad.Event.AppendJSON(nil), true
}

func uintParam(v string, def, max uint64) (uint64, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > max {
		return 0, fmt.Errorf("out of range")
	}
	return n, nil
}

type notGrantedProblem struct {
	httpedge.Problem
	NotGranted *NotGrantedError `json:"not_granted"`
}

func (s *Service) unavailable(w http.ResponseWriter, err error) {
	s.log.Error("sharing: jetstream", zap.Error(err))
	problem(w, http.StatusServiceUnavailable, ProblemUnavailable, "JetStream unavailable", "try again")
}

func bad(w http.ResponseWriter, detail string) {
	problem(w, http.StatusBadRequest, ProblemBadRequest, "Bad subscription request", detail)
}

func problem(w http.ResponseWriter, status int, typ, title, detail string) {
	httpedge.Problem{Type: typ, Title: title, Status: status, Detail: detail}.Write(w)
}
