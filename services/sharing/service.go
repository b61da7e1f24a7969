package sharing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/admit"
	"github.com/iochub/iochub/pkg/audit"
	"github.com/iochub/iochub/pkg/dlq"
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
const ConsumerPrefix = natsjs.SubscriptionConsumerPrefix

// Problem types of the sharing API.
const (
	ProblemNotGranted   = "urn:iochub:problem:not-granted"
	ProblemBadRequest   = "urn:iochub:problem:bad-subscription"
	ProblemNotFound     = "urn:iochub:problem:unknown-subscription"
	ProblemConflict     = "urn:iochub:problem:subscription-exists"
	ProblemWrongMode    = "urn:iochub:problem:wrong-mode" // pull of a push subscription, pause of a pull one
	ProblemTooMany      = "urn:iochub:problem:too-many-subscriptions"
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
	Mode          string    `json:"mode"`                     // "pull", "push" or "nats"
	URL           string    `json:"url,omitempty"`            // push: where events are POSTed
	Batch         int       `json:"batch,omitempty"`          // push: events per request, 1 (one event) to 100 (a batch)
	Created       time.Time `json:"created"`
	Paused        bool      `json:"paused,omitempty"` // push: delivery stopped until resumed
	// GiveUp (push): how long the agency may take nothing before what
	// follows goes to the subscription's dead letters; a Go duration, 1s
	// to 720h, 24h when not given.
	GiveUp string `json:"give_up,omitempty"`
	// Secret signs each push request (Standard Webhooks); it is answered
	// once, when the subscription is made.
	Secret string `json:"signing_secret,omitempty"`
	// NATS (mode nats): where the agency's NATS user reads the events.
	NATS *NATSPlace `json:"nats,omitempty"`
}

// NATSPlace is where a subscription of mode nats is read: a durable pull
// consumer of the agency's own stream, which only the agency's subscriber
// users may read.
type NATSPlace struct {
	Stream   string `json:"stream"`
	Consumer string `json:"consumer"`
	Subject  string `json:"subject"`
}

// delivered reports whether the hub sends the subscription's events
// itself (push to a URL, or into the agency's NATS stream).
func (sub Subscription) delivered() bool { return sub.Mode == "push" || sub.Mode == "nats" }

// requestSize is how many events the hub sends at once.
func (sub Subscription) requestSize() int {
	if sub.Mode == "nats" {
		return 100
	}
	return sub.Batch
}

// public is sub without its secret.
func (sub Subscription) public() Subscription {
	sub.Secret = ""
	return sub
}

const defaultGiveUp = 24 * time.Hour

// giveUp is the subscription's give-up time.
func (sub Subscription) giveUp() time.Duration {
	if d, err := time.ParseDuration(sub.GiveUp); err == nil {
		return d
	}
	return defaultGiveUp
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
	audit    audit.Log // every grant and every exchange is recorded there
	unsealed uint64    // events stored before the hub sealed its marks

	mu       sync.Mutex
	creating sync.Mutex       // PUT of a new subscription: its count and its creation
	pulls    map[string]*pull // by subscription
	pushers  map[string]*pusher
	runCtx   context.Context // Run's, once it runs

	agencyList                     []*Agency
	pushBackoffMin, pushBackoffMax time.Duration
}

// pull is a subscription's messages sent and not yet confirmed.
type pull struct {
	sync.Mutex
	confirmed atomic.Uint64 // events confirmed since the hub started (pull)
	last      atomic.Int64  // when the last were confirmed, Unix ns
	held      []jetstream.Msg
	sent      [][]byte // the events as sent, sent again until confirmed
	seqs      []uint64
	ids       []audit.Exchanged
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
	s := &Service{js: js, kv: kv, reg: reg, areas: areas, adm: adm, log: log, unsealed: unsealed, pulls: map[string]*pull{},
		pushers: map[string]*pusher{}, agencyList: agencies, pushBackoffMin: 500 * time.Millisecond, pushBackoffMax: 30 * time.Second, // under half the ack wait: InProgress at each retry keeps the request's events
		audit:    audit.Log{JS: js, Tail: &audit.Tail{}}, // the exchanges are most appends: each need not read the last back
		agencies: httpedge.NewKeyring("agency", agencies, func(a *Agency) string { return a.TokenSHA256 })}
	if err := audit.Declare(ctx, js); err != nil {
		return nil, fmt.Errorf("sharing: %w", err)
	}
	if err := s.recordGrants(ctx, cfg); err != nil {
		return nil, fmt.Errorf("sharing: %w", err)
	}
	return s, nil
}

// grantsKey is where Bucket keeps an agency's grants as last recorded (a
// subscription's name has no dot).
func grantsKey(agency string) string { return "grants." + agency }

// recordGrants appends grants.set to the audit log for each agency whose
// grants differ from those last recorded, and grants.removed for an agency
// no longer in the config: every change of who may receive what is in the
// log.
func (s *Service) recordGrants(ctx context.Context, cfg Config) error {
	inConfig := map[string]bool{}
	for _, a := range cfg.Agencies {
		inConfig[a.Name] = true
		b, err := json.Marshal(a.Grants)
		if err != nil {
			return err
		}
		if e, err := s.kv.Get(ctx, grantsKey(a.Name)); err == nil && string(e.Value()) == string(b) {
			continue
		} else if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return err
		}
		if _, err := s.audit.Append(ctx, audit.Entry{Actor: "config", Role: "operator", Via: "config", Action: "grants.set", Target: a.Name, Detail: b}); err != nil {
			return err
		}
		if _, err := s.kv.Put(ctx, grantsKey(a.Name), b); err != nil {
			return err
		}
	}
	keys, err := s.kv.ListKeys(ctx)
	if err != nil {
		return err
	}
	for k := range keys.Keys() {
		agency, ok := strings.CutPrefix(k, "grants.")
		if !ok || inConfig[agency] {
			continue
		}
		if _, err := s.audit.Append(ctx, audit.Entry{Actor: "config", Role: "operator", Via: "config", Action: "grants.removed", Target: agency}); err != nil {
			return err
		}
		if err := s.kv.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// maxRecordBytes bounds the events of one audit record (IOC_AUDIT takes
// messages of 64 KiB); an exchange of more is recorded in several.
const maxRecordBytes = 48 << 10

// recordExchange appends action (exchange.sent, exchange.confirmed) of
// sub's events to the audit log.
func (s *Service) recordExchange(ctx context.Context, action string, sub *Subscription, events []audit.Exchanged) error {
	for len(events) > 0 {
		n, size := 0, 0
		for n < len(events) && (n == 0 || size+len(events[n].Source)+len(events[n].ID)+100 <= maxRecordBytes) {
			size += len(events[n].Source) + len(events[n].ID) + 100
			n++
		}
		if _, err := s.audit.Append(ctx, audit.Entry{Actor: sub.Agency, Role: "agency", Via: "http", Action: action, Target: sub.Name, Events: events[:n]}); err != nil {
			return err
		}
		events = events[n:]
	}
	return nil
}

// Register mounts the sharing API on mux.
func (s *Service) Register(mux httpedge.Router) {
	mux.HandleFunc("GET /v1/subscriptions", s.agencies.Require(s.list))
	mux.HandleFunc("PUT /v1/subscriptions/{name}", s.agencies.Require(s.put))
	mux.HandleFunc("GET /v1/subscriptions/{name}", s.agencies.Require(s.get))
	mux.HandleFunc("DELETE /v1/subscriptions/{name}", s.agencies.Require(s.delete))
	mux.HandleFunc("GET /v1/subscriptions/{name}/events", s.agencies.Require(s.events))
	mux.HandleFunc("GET /v1/exchanges", s.agencies.Require(s.exchanges))
	mux.HandleFunc("POST /v1/subscriptions/{name}/pause", s.agencies.Require(func(w http.ResponseWriter, r *http.Request, a *Agency) { s.pause(w, r, a, true) }))
	mux.HandleFunc("POST /v1/subscriptions/{name}/resume", s.agencies.Require(func(w http.ResponseWriter, r *http.Request, a *Agency) { s.pause(w, r, a, false) }))
	mux.HandleFunc("GET /v1/subscriptions/{name}/dead-letters", s.agencies.Require(s.deadLetters))
	mux.HandleFunc("POST /v1/subscriptions/{name}/dead-letters/replay", s.agencies.Require(s.replay))
}

// deadLetters lists the oldest 100 of a push subscription's dead letters
// and says how many there are.
func (s *Service) deadLetters(w http.ResponseWriter, r *http.Request, a *Agency) {
	sub := s.own(w, r, a)
	if sub == nil {
		return
	}
	q := dlq.Queue{JS: s.js}
	n, err := q.CountDeliveryLetters(r.Context(), sub.Name)
	if err != nil {
		s.unavailable(w, err)
		return
	}
	letters, err := q.DeliveryLetters(r.Context(), sub.Name, 0, 100)
	if err != nil {
		s.unavailable(w, err)
		return
	}
	out := []dlq.Letter{}
	for _, l := range letters {
		out = append(out, l.Letter)
	}
	httpedge.WriteJSON(w, http.StatusOK, map[string]any{"count": n, "dead_letters": out})
}

// replay asks the subscription's pusher to deliver its dead letters again,
// before what waits on the log; it answers at once (202) with how many
// there are; GET /v1/subscriptions/{name} shows the replay's progress.
func (s *Service) replay(w http.ResponseWriter, r *http.Request, a *Agency) {
	sub := s.own(w, r, a)
	if sub == nil {
		return
	}
	if !sub.delivered() {
		problem(w, http.StatusConflict, ProblemWrongMode, "A pull subscription", "a pull subscription has no dead letters: what it has not confirmed stays on the log")
		return
	}
	n, err := dlq.Queue{JS: s.js}.CountDeliveryLetters(r.Context(), sub.Name)
	if err != nil {
		s.unavailable(w, err)
		return
	}
	s.mu.Lock()
	p := s.pushers[sub.Name]
	s.mu.Unlock()
	if p == nil {
		problem(w, http.StatusServiceUnavailable, ProblemUnavailable, "Not delivering", "this hub process does not deliver the subscription now; try again")
		return
	}
	p.replay.Store(true)
	httpedge.WriteJSON(w, http.StatusAccepted, map[string]any{"replaying": n})
}

// pause stops (or starts again) a push subscription's delivery. What waits
// stays on the log, in order, and is delivered after it resumes.
func (s *Service) pause(w http.ResponseWriter, r *http.Request, a *Agency, paused bool) {
	sub := s.own(w, r, a)
	if sub == nil {
		return
	}
	if !sub.delivered() {
		problem(w, http.StatusConflict, ProblemWrongMode, "A pull subscription", "a pull subscription is paused by not pulling")
		return
	}
	sub.Paused = paused
	b, _ := json.Marshal(sub)
	if _, err := s.kv.Put(r.Context(), sub.Name, b); err != nil {
		s.unavailable(w, err)
		return
	}
	s.mu.Lock()
	if p := s.pushers[sub.Name]; p != nil {
		p.paused.Store(paused)
	}
	s.mu.Unlock()
	httpedge.WriteJSON(w, http.StatusOK, sub.public())
}

// exchanges answers the agency's records of the audit log: its grants and
// every exchange of its subscriptions, from= to= (RFC 3339, optional), the
// newest limit= (1000 by default, at most 10,000), as
// they are in the chain (each verifiable with the records around it:
// iochub audit verify).
func (s *Service) exchanges(w http.ResponseWriter, r *http.Request, a *Agency) {
	limit, err := uintParam(r.URL.Query().Get("limit"), 1000, 10_000)
	if err != nil || limit == 0 {
		bad(w, "limit: want 1 to 10000 records")
		return
	}
	var from, to time.Time
	for _, p := range []struct {
		name string
		into *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := r.URL.Query().Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				bad(w, p.name+": want an RFC 3339 time")
				return
			}
			*p.into = t
		}
	}
	out := []json.RawMessage{}
	err = s.audit.Records(r.Context(), func(_ uint64, raw []byte) error {
		var rec audit.Record
		if json.Unmarshal(raw, &rec) != nil {
			return nil
		}
		mine := (rec.Actor == a.Name && strings.HasPrefix(rec.Action, "exchange.")) || (strings.HasPrefix(rec.Action, "grants.") && rec.Target == a.Name)
		if mine && !rec.Time.Before(from) && (to.IsZero() || rec.Time.Before(to)) {
			if out = append(out, append(json.RawMessage(nil), raw...)); len(out) > int(limit) {
				out = out[1:] // the newest limit records
			}
		}
		return nil
	})
	if err != nil {
		s.unavailable(w, err)
		return
	}
	httpedge.WriteJSON(w, http.StatusOK, map[string]any{"records": out})
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
		bad(w, "body: want {\"types\": [...], \"areas\": [...], \"subject_prefix\": \"...\", \"start\": \"now|beginning|<RFC 3339>\", \"mode\": \"pull|push\", \"url\": \"...\", \"batch\": N}: "+err.Error())
		return
	}
	sub.Name, sub.Agency, sub.Secret = name, a.Name, ""
	if sub.Mode == "" {
		sub.Mode = "pull"
	}
	if sub.Mode == "push" && sub.Batch == 0 {
		sub.Batch = 1
	}
	if sub.Start == "" {
		sub.Start = "now"
	}
	start, err := s.validate(&sub)
	if err != nil {
		bad(w, err.Error())
		return
	}
	if sub.Mode == "push" && !slices.ContainsFunc(a.PushURLs, func(p string) bool { return strings.HasPrefix(sub.URL, p) }) {
		problem(w, http.StatusForbidden, ProblemNotGranted, "Not granted", fmt.Sprintf("agency %s may not push to %s: its push_urls are %v", a.Name, sub.URL, a.PushURLs))
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
		httpedge.WriteJSON(w, http.StatusOK, old.public())
		return
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		s.unavailable(w, err)
		return
	}
	// One new subscription at a time in this process, so that the count
	// below holds (processes serving one hub at once may each add one).
	s.creating.Lock()
	defer s.creating.Unlock()
	if n, err := s.count(ctx, a.Name); err != nil {
		s.unavailable(w, err)
		return
	} else if n >= a.maxSubscriptions() {
		problem(w, http.StatusConflict, ProblemTooMany, "Too many subscriptions",
			fmt.Sprintf("agency %s has %d subscriptions, its bound (sharing.agencies[].max_subscriptions): delete one first", a.Name, n))
		return
	}
	sub.Created = time.Now().UTC()
	if sub.Mode == "push" {
		sub.Secret = newSecret()
	}
	if sub.Mode == "nats" {
		sub.NATS = &NATSPlace{Stream: natsjs.ShareStream(a.Name), Consumer: name, Subject: natsjs.ShareSubject(a.Name, name)}
		if err := s.declareNATS(ctx, sub.NATS); err != nil {
			s.unavailable(w, err)
			return
		}
	}
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
	s.log.Info("subscription created", zap.String("subscription", name), zap.String("agency", a.Name), zap.Strings("types", sub.Types), zap.String("mode", sub.Mode))
	if sub.delivered() {
		s.startPush(&sub)
	}
	httpedge.WriteJSON(w, http.StatusCreated, sub) // the only answer holding the secret
}

func (s *Service) validate(sub *Subscription) (time.Time, error) {
	if len(sub.Types) > 100 || len(sub.Areas) > 1000 {
		return time.Time{}, errors.New("types: at most 100; areas: at most 1000")
	}
	if len(sub.Types) == 0 || slices.Contains(sub.Types, "") {
		return time.Time{}, errors.New("types: name at least one event type (or a prefix ending in *)")
	}
	switch sub.Mode {
	case "pull":
		if sub.URL != "" || sub.Batch != 0 || sub.GiveUp != "" {
			return time.Time{}, errors.New("url, batch and give_up are for push subscriptions")
		}
	case "push":
		if u, err := url.Parse(sub.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return time.Time{}, fmt.Errorf("url %q: want the http(s) URL events are POSTed to", sub.URL)
		}
		if sub.Batch < 1 || sub.Batch > 100 {
			return time.Time{}, fmt.Errorf("batch %d: want 1 to 100 events a request", sub.Batch)
		}

	case "nats":
		if sub.URL != "" || sub.Batch != 0 {
			return time.Time{}, errors.New("url and batch are for push subscriptions")
		}
	default:
		return time.Time{}, fmt.Errorf("mode %q: want pull, push or nats", sub.Mode)
	}
	if d, err := time.ParseDuration(sub.GiveUp); sub.GiveUp != "" && (err != nil || d < time.Second || d > 720*time.Hour) {
		return time.Time{}, fmt.Errorf("give_up %q: want a duration from 1s to 720h, e.g. 24h", sub.GiveUp)
	}
	for _, ar := range sub.Areas {
		if _, err := s.areas.Lookup(ar); err != nil {
			return time.Time{}, fmt.Errorf("areas: %w (GET /v1/areas lists them)", err)
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
	return slices.Equal(a.Types, b.Types) && slices.Equal(a.Areas, b.Areas) && a.SubjectPrefix == b.SubjectPrefix && a.Start == b.Start &&
		a.Mode == b.Mode && a.URL == b.URL && a.Batch == b.Batch && a.GiveUp == b.GiveUp
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
	var sub *Subscription
	var err error = jetstream.ErrKeyNotFound
	if subscriptionName.MatchString(name) {
		sub, err = s.load(r.Context(), name)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrInvalidKey):
		problem(w, http.StatusNotFound, ProblemNotFound, "Unknown subscription", "no subscription is called "+strings.ToValidUTF8(name[:min(len(name), 120)], "?"))
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

// Status is what a subscription's delivery has done since the hub started,
// for the ops page and /metrics.
type Status struct {
	Name, Agency, Mode string
	Paused             bool
	Delivered          uint64 // events the agency took (push: 2xx; pull: confirmed; nats: its stream stored them)
	Retries            uint64
	DeadLettered       uint64
	LastDelivery       time.Time
	LastError          string
}

// Statuses are every subscription's, by name.
func (s *Service) Statuses(ctx context.Context) ([]Status, error) {
	keys, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []Status
	for k := range keys.Keys() {
		if strings.HasPrefix(k, "grants.") {
			continue
		}
		sub, err := s.load(ctx, k)
		if err != nil {
			continue
		}
		st := Status{Name: sub.Name, Agency: sub.Agency, Mode: sub.Mode, Paused: sub.Paused}
		s.mu.Lock()
		p, pl := s.pushers[sub.Name], s.pulls[sub.Name]
		s.mu.Unlock()
		if p != nil {
			ps := p.snapshot()
			st.Paused, st.Delivered, st.Retries, st.DeadLettered, st.LastError = ps.Paused, ps.Delivered, ps.Retries, ps.DeadLettered, ps.LastError
			if ps.LastDelivery != nil {
				st.LastDelivery = *ps.LastDelivery
			}
		}
		if pl != nil && sub.Mode == "pull" { // never locked here: a long poll holds it
			st.Delivered = pl.confirmed.Load()
			if ns := pl.last.Load(); ns > 0 {
				st.LastDelivery = time.Unix(0, ns).UTC()
			}
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// SubscriptionStatus is GET /v1/subscriptions/{name}: the subscription and,
// for push, what its delivery has done.
type SubscriptionStatus struct {
	Subscription
	Push *PushStatus `json:"push_status,omitempty"`
	// NATSPending (mode nats): events in the agency's stream it has not
	// acked yet.
	NATSPending *uint64 `json:"nats_pending,omitempty"`
}

func (s *Service) get(w http.ResponseWriter, r *http.Request, a *Agency) {
	sub := s.own(w, r, a)
	if sub == nil {
		return
	}
	out := SubscriptionStatus{Subscription: sub.public()}
	s.mu.Lock()
	if p := s.pushers[sub.Name]; p != nil {
		st := p.snapshot()
		out.Push = &st
	}
	s.mu.Unlock()
	if out.Push != nil {
		if n, err := (dlq.Queue{JS: s.js}).CountDeliveryLetters(r.Context(), sub.Name); err == nil {
			out.Push.DeadLetters = n
		}
	}
	if sub.NATS != nil {
		if c, err := s.js.Consumer(r.Context(), sub.NATS.Stream, sub.NATS.Consumer); err == nil {
			n := c.CachedInfo().NumPending + uint64(c.CachedInfo().NumAckPending)
			out.NATSPending = &n
		}
	}
	httpedge.WriteJSON(w, http.StatusOK, out)
}

// count is how many subscriptions agency has.
func (s *Service) count(ctx context.Context, agency string) (int, error) {
	keys, err := s.kv.ListKeys(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for k := range keys.Keys() {
		if strings.HasPrefix(k, "grants.") {
			continue
		}
		if sub, err := s.load(ctx, k); err == nil && sub.Agency == agency {
			n++
		}
	}
	return n, nil
}

func (s *Service) list(w http.ResponseWriter, r *http.Request, a *Agency) {
	out := []Subscription{}
	keys, err := s.kv.ListKeys(r.Context())
	if err != nil {
		s.unavailable(w, err)
		return
	}
	for k := range keys.Keys() {
		if strings.HasPrefix(k, "grants.") {
			continue // the grants last recorded, not a subscription
		}
		if sub, err := s.load(r.Context(), k); err == nil && sub.Agency == a.Name {
			out = append(out, sub.public())
		}
	}
	httpedge.WriteJSON(w, http.StatusOK, map[string]any{"subscriptions": out})
}

func (s *Service) delete(w http.ResponseWriter, r *http.Request, a *Agency) {
	sub := s.own(w, r, a)
	if sub == nil {
		return
	}
	s.stopPush(sub.Name)
	if err := (dlq.Queue{JS: s.js}).PurgeDeliveryLetters(r.Context(), sub.Name); err != nil {
		s.unavailable(w, err)
		return
	}
	if sub.NATS != nil {
		if err := s.js.DeleteConsumer(r.Context(), sub.NATS.Stream, sub.NATS.Consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			s.unavailable(w, err)
			return
		}
		if st, err := s.js.Stream(r.Context(), sub.NATS.Stream); err == nil {
			if err := st.Purge(r.Context(), jetstream.WithPurgeSubject(sub.NATS.Subject)); err != nil {
				s.unavailable(w, err)
				return
			}
		}
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
	if sub.Mode != "pull" {
		problem(w, http.StatusConflict, ProblemWrongMode, "A push subscription", "subscription "+sub.Name+" is delivered to its URL, not pulled")
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

	// Confirmed: recorded, then every held message up to after is acked.
	ctx := r.Context()
	confirmed := 0
	for confirmed < len(p.held) && p.seqs[confirmed] <= after {
		confirmed++
	}
	if confirmed > 0 {
		if err := s.recordExchange(ctx, "exchange.confirmed", sub, p.ids[:confirmed]); err != nil {
			s.unavailable(w, err)
			return
		}
		for _, m := range p.held[:confirmed] {
			_ = m.Ack()
		}
		p.confirmed.Add(uint64(confirmed))
		p.last.Store(time.Now().UnixNano())
		p.held, p.sent, p.seqs, p.ids = p.held[confirmed:], p.sent[confirmed:], p.seqs[confirmed:], p.ids[confirmed:]
	}
	cons, err := s.js.Consumer(ctx, natsjs.EventsStream, ConsumerPrefix+sub.Name)
	if err != nil {
		s.unavailable(w, err)
		return
	}
	if len(p.held) == 0 {
		if err := s.fetch(ctx, cons, p, int(max), time.Duration(waitS)*time.Second, a, sub); err != nil {
			s.unavailable(w, err)
			return
		}
	}
	// Recorded before it leaves: a delivery the log does not hold is not made.
	if err := s.recordExchange(ctx, "exchange.sent", sub, p.ids); err != nil {
		s.unavailable(w, err)
		return
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

// fetch takes up to max new messages into p, returning as soon as one is
// there: what is waiting at once; if nothing, the first to come within
// wait, then what else is waiting. (A JetStream fetch of max waits for max.)
func (s *Service) fetch(ctx context.Context, cons jetstream.Consumer, p *pull, most int, wait time.Duration, a *Agency, sub *Subscription) error {
	take := func(batch jetstream.MessageBatch) int {
		n := 0
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			body, id, ok := s.deliverable(m, meta.Sequence.Stream, a, sub)
			if !ok {
				_ = m.Ack() // not for this subscription: looked at, settled
				continue
			}
			p.held, p.sent, p.seqs, p.ids = append(p.held, m), append(p.sent, body), append(p.seqs, meta.Sequence.Stream), append(p.ids, id)
		}
		return n
	}
	deadline := time.Now().Add(wait)
	for {
		batch, err := cons.FetchNoWait(most)
		if err != nil {
			return err
		}
		n := take(batch)
		if len(p.held) > 0 || n == most {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return nil
		}
		// Nothing for this subscription yet: wait for the next message, a
		// second at a time, so that a client gone or a hub stopping ends
		// the wait.
		batch, err = cons.Fetch(1, jetstream.FetchMaxWait(min(max(left, 100*time.Millisecond), time.Second)))
		if err != nil {
			return err
		}
		if take(batch) == 0 {
			continue
		}
		if len(p.held) > 0 {
			rest, err := cons.FetchNoWait(most - 1)
			if err != nil {
				return err
			}
			take(rest)
			return nil
		}
	}
}

// deliverable is the event of m as agency a receives it through sub, or
// false when it is not for them: outside the grants or the subscription's
// filters, or not an event the hub stores (the aggregator dead-letters
// those). Personal data leaves only pseudonymized, or not at all.
func (s *Service) deliverable(m jetstream.Msg, seq uint64, a *Agency, sub *Subscription) ([]byte, audit.Exchanged, bool) {
	var none audit.Exchanged
	e, _, err := admit.FromMsg(m.Headers(), m.Data())
	if err != nil {
		return nil, none, false
	}
	var ad admit.Admitted
	if seq <= s.unsealed || s.adm.Sealed(m.Subject(), m.Headers(), m.Data()) {
		ad, err = s.adm.Marked(e, false) // pseudonymized when it was admitted
	} else {
		ad, err = s.adm.Clear(e) // published in clear: validated and pseudonymized here
	}
	if err != nil {
		return nil, none, false
	}
	obj, _ := ad.Data.(map[string]any)
	area, _ := obj["area_code"].(string)
	ok, drop := a.Allows(ad.Event.Type, area, s.areas)
	if !ok || !strings.HasPrefix(ad.Event.Subject, sub.SubjectPrefix) {
		return nil, none, false
	}
	if len(sub.Areas) > 0 && !slices.ContainsFunc(sub.Areas, func(ar string) bool { return s.areas.Within(area, ar) }) {
		return nil, none, false
	}
	if drop && pii.Drop(ad.Type, ad.Data) {
		if ad.Event.Data, err = event.AppendValue(nil, ad.Data); err != nil {
			return nil, none, false
		}
	}
	out := ad.Event.AppendJSON(nil)
	sum := sha256.Sum256(out)
	return out, audit.Exchanged{Source: ad.Event.Source, ID: ad.Event.ID, SHA256: hex.EncodeToString(sum[:])}, true
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
