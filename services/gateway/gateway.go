// Package gateway is iochub's HTTP entry for events: the CloudEvents HTTP
// binding on POST /v1/events in structured, binary and batch modes. An event
// is answered 202 only once JetStream has stored it; a bad event gets a
// problem document naming the event, the JSON pointer and the rule, and never
// sinks the good events of its batch.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/time/rate"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/admit"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
)

// Media types of the CloudEvents HTTP binding.
const (
	MediaStructured = "application/cloudevents+json"
	MediaBatch      = "application/cloudevents-batch+json"
)

// Publisher stores messages in JetStream and reports each one's outcome.
type Publisher interface {
	PublishAll(ctx context.Context, msgs []*nats.Msg) []natsjs.Outcome
	// ProducerOf says who sent the event stored at seq ("" when unknown).
	ProducerOf(ctx context.Context, seq uint64) (string, error)
}

// Handler serves POST /v1/events.
type Handler struct {
	cfg       Config
	adm       *admit.Admitter
	pub       Publisher
	log       *zap.Logger
	producers *httpedge.Keyring[*Producer]
	counts    *counts
	limits    map[*Producer][]limit // producers with a rate or a quota
	reserved  []reservation         // the connectors' source prefixes
	timeout   time.Duration
}

// reservation is a connector's source prefix.
type reservation struct {
	sources event.Scope
	owner   string
}

// New builds the handler. cfg must have passed Validate.
func New(cfg Config, reg *schema.Registry, pub Publisher, pseudo *pii.Pseudonymizer, log *zap.Logger) *Handler {
	cfg.Defaults()
	h := &Handler{cfg: cfg, adm: admit.New(reg, pseudo, cfg.MaxEventBytes), pub: pub, log: log.With(zap.String("component", "gateway")),
		timeout: 30 * time.Second, counts: newCounts()}
	producers := make([]*Producer, len(cfg.Producers))
	h.limits = map[*Producer][]limit{}
	for i := range cfg.Producers {
		producers[i] = &cfg.Producers[i]
		if l := producers[i].limits(cfg.MaxBatchEvents); l != nil {
			h.limits[producers[i]] = l
		}
	}
	h.producers = httpedge.NewKeyring("producer", producers, func(p *Producer) string { return p.TokenSHA256 })
	for prefix, owner := range cfg.Reserved {
		h.reserved = append(h.reserved, reservation{sources: event.Scope{Sources: []string{prefix}}, owner: owner})
	}
	return h
}

// Register mounts the gateway's routes on mux.
func (h *Handler) Register(mux httpedge.Router) {
	mux.Handle("POST /v1/events", h)
}

// ServeHTTP handles one POST /v1/events and counts its outcome.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := &tally{}
	h.serve(w, r, t)
	h.counts.record(h.log, t)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, t *tally) {
	prod, ok := h.authenticate(w, r, t)
	if !ok {
		return
	}
	t.producer = prod.Name
	mode, ok := h.mode(w, r, t)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.problem(w, t, http.StatusRequestEntityTooLarge, ProblemTooLarge, "Request body too large",
				fmt.Sprintf("the body is over the limit of %d bytes; send smaller batches", h.cfg.MaxBodyBytes))
			return
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			h.problem(w, t, http.StatusRequestTimeout, ProblemMalformed, "Body too slow",
				"the body did not arrive within the listener's read timeout (http.read_timeout); send it faster or in smaller batches")
			return
		}
		h.problem(w, t, http.StatusBadRequest, ProblemMalformed, "Unreadable body", "reading the body: "+err.Error())
		return
	}

	var items []item
	switch mode {
	case MediaBatch:
		evs, errs, err := event.ParseBatch(body, h.cfg.MaxBatchEvents)
		var tooLarge *event.BatchTooLargeError
		if errors.As(err, &tooLarge) {
			h.problem(w, t, http.StatusRequestEntityTooLarge, ProblemTooLarge, "Batch too large", err.Error())
			return
		}
		if err != nil {
			h.problem(w, t, http.StatusBadRequest, ProblemMalformed, "Malformed batch", err.Error())
			return
		}
		if len(evs) == 0 {
			h.problem(w, t, http.StatusBadRequest, ProblemMalformed, "Empty batch", "the batch holds no events")
			return
		}
		items = make([]item, len(evs))
		for i := range evs {
			items[i] = item{ev: evs[i], err: envelopeError(errs[i], "")}
		}
	case MediaStructured:
		ev, err := event.Parse(body)
		items = []item{{ev: ev, err: envelopeError(err, "")}}
	default: // binary
		ev, err := binaryEvent(r, body)
		items = []item{{ev: ev, err: envelopeError(err, "ce-")}}
	}

	t.events = len(items)
	if !h.allow(w, t, prod, len(items)) {
		return
	}
	h.prepare(prod, items)
	h.publish(r.Context(), items)
	h.respond(w, t, mode == MediaBatch, items)
}

// reservedFor names the connector whose source prefix holds src.
func (h *Handler) reservedFor(src string) (string, bool) {
	for _, r := range h.reserved {
		if r.sources.AllowsSource(src) {
			return r.owner, true
		}
	}
	return "", false
}

// allow takes n events from each of the producer's buckets (its rate, its
// daily quota), or takes none and answers 429 with the time until they
// would all fit; nothing of the request is kept then.
func (h *Handler) allow(w http.ResponseWriter, t *tally, prod *Producer, n int) bool {
	lims := h.limits[prod]
	if len(lims) == 0 {
		return true
	}
	now := time.Now()
	var taken []*rate.Reservation
	var wait time.Duration
	var over string
	for _, l := range lims {
		res := l.ReserveN(now, n)
		if !res.OK() {
			for _, r := range taken {
				r.CancelAt(now)
			}
			h.problem(w, t, http.StatusTooManyRequests, ProblemRateLimited, "Over the producer's rate",
				fmt.Sprintf("%d events in one request are more than producer %q may send at once (%s); send smaller batches", n, prod.Name, l.name))
			return false
		}
		taken = append(taken, res)
		if d := res.DelayFrom(now); d > wait {
			wait, over = d, l.name
		}
	}
	if wait == 0 {
		return true
	}
	for _, r := range taken {
		r.CancelAt(now)
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	h.problem(w, t, http.StatusTooManyRequests, ProblemRateLimited, "Over the producer's rate",
		fmt.Sprintf("producer %q may send %s; retry after %s", prod.Name, over, wait.Round(time.Second)))
	return false
}

// item is one event on its way through the handler.
type item struct {
	ev  event.Event
	msg *nats.Msg
	err *itemError // nil while the event is fine
	out natsjs.Outcome
	// producer is the sender's name, set on the message.
	producer string
}

type itemError struct {
	status int
	errs   []FieldError
}

// rule is the reason an event is counted under: the first rule it broke.
func (e *itemError) rule() string {
	if len(e.errs) == 0 || e.errs[0].Rule == "" {
		return "invalid"
	}
	return e.errs[0].Rule
}

func envelopeError(err error, headerPrefix string) *itemError {
	if err == nil {
		return nil
	}
	var ae *event.AttributeError
	if errors.As(err, &ae) {
		ptr := "/" + ae.Attribute
		if headerPrefix != "" {
			ptr = "/headers/" + headerPrefix + ae.Attribute
			if ae.Attribute == "data" {
				ptr = "/body"
			}
		}
		return &itemError{status: http.StatusBadRequest, errs: []FieldError{{Pointer: ptr, Rule: ae.Rule, Message: ae.Error()}}}
	}
	return &itemError{status: http.StatusBadRequest, errs: []FieldError{{Pointer: "", Rule: "json", Message: err.Error()}}}
}

// prepare checks scope and data, pseudonymizes, and builds the messages.
func (h *Handler) prepare(prod *Producer, items []item) {
	for i := range items {
		it := &items[i]
		if it.err != nil {
			continue
		}
		e := &it.ev
		if !prod.AllowsSource(e.Source) {
			it.err = &itemError{status: http.StatusForbidden, errs: []FieldError{{Pointer: "/source", Rule: "scope",
				Message: fmt.Sprintf("producer %q may not send events with source %q", prod.Name, e.Source)}}}
			continue
		}
		if owner, ok := h.reservedFor(e.Source); ok {
			it.err = &itemError{status: http.StatusForbidden, errs: []FieldError{{Pointer: "/source", Rule: "reserved",
				Message: fmt.Sprintf("source %q is the %s connector's: the hub reads that system itself", e.Source, owner)}}}
			continue
		}
		if !prod.AllowsType(e.Type) {
			it.err = &itemError{status: http.StatusForbidden, errs: []FieldError{{Pointer: "/type", Rule: "scope",
				Message: fmt.Sprintf("producer %q may not send events of type %q", prod.Name, e.Type)}}}
			continue
		}
		ad, err := h.adm.Clear(*e)
		var ve *schema.ValidationError
		var ae *event.AttributeError
		switch {
		case errors.As(err, &ae): // the time out of the window
			it.err = envelopeError(err, "")
			continue
		case errors.Is(err, schema.ErrUnknownType):
			it.err = &itemError{status: http.StatusBadRequest, errs: []FieldError{{Pointer: "/type", Rule: "known-type",
				Message: fmt.Sprintf("no schema for type %q", e.Type)}}}
			continue
		case errors.As(err, &ve):
			it.err = validationError(err)
			continue
		case err != nil:
			it.err = &itemError{status: http.StatusBadRequest, errs: []FieldError{{Pointer: "/data", Rule: "json", Message: err.Error()}}}
			continue
		}
		*e = ad.Event
		m, err := h.adm.Msg(ad)
		switch {
		case errors.Is(err, admit.ErrTooLarge):
			it.err = &itemError{status: http.StatusRequestEntityTooLarge, errs: []FieldError{{Pointer: "", Rule: "max-event-bytes", Message: err.Error()}}}
			continue
		case err != nil:
			it.err = &itemError{status: http.StatusBadRequest, errs: []FieldError{{Pointer: "/type", Rule: "format", Message: err.Error()}}}
			continue
		}
		m.Header.Set(natsjs.HeaderProducer, prod.Name)
		it.msg = m
		it.producer = prod.Name
	}
}

func validationError(err error) *itemError {
	var ve *schema.ValidationError
	if !errors.As(err, &ve) {
		return &itemError{status: http.StatusBadRequest, errs: []FieldError{{Pointer: "/data", Rule: "schema", Message: err.Error()}}}
	}
	out := &itemError{status: http.StatusBadRequest}
	for _, v := range ve.Violations {
		out.errs = append(out.errs, FieldError{Pointer: "/data" + v.Pointer, Rule: v.Rule, Message: v.Message})
	}
	return out
}

func (h *Handler) publish(ctx context.Context, items []item) {
	var msgs []*nats.Msg
	var idx []int
	for i := range items {
		if items[i].msg != nil {
			msgs = append(msgs, items[i].msg)
			idx = append(idx, i)
		}
	}
	if len(msgs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	outs := h.pub.PublishAll(ctx, msgs)
	busy := 0
	for j, o := range outs {
		it := &items[idx[j]]
		it.out = o
		if o.Err == nil && o.Duplicate {
			h.checkOwner(ctx, it)
		}
		if o.Err == nil {
			continue
		}
		msg := "JetStream cannot take the event now; retry later"
		switch {
		case errors.Is(o.Err, natsjs.ErrBusy): // the whole request, nothing of it published
			msg = "the hub is taking in more than it can store right now; nothing of this request was kept: send it again after Retry-After"
			if busy++; busy == 1 {
				h.log.Warn("publish window full: request refused whole", zap.Int("events", len(msgs)), zap.Error(o.Err))
			}
		case errors.Is(o.Err, natsjs.ErrStreamFull):
			msg = "the event stream is full; retry later"
			fallthrough
		default:
			h.log.Warn("publish failed", zap.String("source", it.ev.Source), zap.String("id", it.ev.ID), zap.Error(o.Err))
		}
		it.err = &itemError{status: http.StatusServiceUnavailable, errs: []FieldError{{Pointer: "", Rule: "stored", Message: msg}}}
	}
}

// checkOwner turns a duplicate into a 409 when the identity is another
// sender's: a producer whose source scope overlaps another's, or a
// connector's, never has its event silently taken for a retry.
func (h *Handler) checkOwner(ctx context.Context, it *item) {
	owner, err := h.pub.ProducerOf(ctx, it.out.Seq)
	if err != nil {
		h.log.Warn("who sent a duplicate's original is unknown", zap.Uint64("seq", it.out.Seq), zap.Error(err))
		return
	}
	if owner != "" && owner != it.producer {
		it.err = &itemError{status: http.StatusConflict, errs: []FieldError{{Pointer: "/id", Rule: "identity",
			Message: fmt.Sprintf("the identity (source %q, id %q) belongs to an event another sender sent; choose another id", it.ev.Source, it.ev.ID)}}}
	}
}

func (h *Handler) respond(w http.ResponseWriter, t *tally, batch bool, items []item) {
	resp := Response{Accepted: []Accepted{}}
	statuses := map[int]int{}
	for i, it := range items {
		res := Result{Index: i, ID: it.ev.ID, Source: it.ev.Source, Status: http.StatusAccepted}
		if it.err != nil {
			res.Status = it.err.status
			t.reject(it.err.rule(), 1)
			for _, fe := range it.err.errs {
				fe.Index, fe.ID, fe.Source = i, it.ev.ID, it.ev.Source
				res.Errors = append(res.Errors, fe)
				resp.Errors = append(resp.Errors, fe)
			}
		} else {
			res.Duplicate = it.out.Duplicate
			resp.Accepted = append(resp.Accepted, Accepted{ID: it.ev.ID, Source: it.ev.Source, Duplicate: it.out.Duplicate})
		}
		statuses[res.Status]++
		if batch {
			resp.Results = append(resp.Results, res)
		}
	}
	rejected := len(items) - len(resp.Accepted)
	t.accepted = len(resp.Accepted)
	switch {
	case rejected == 0:
		resp.Status = http.StatusAccepted
		httpedge.WriteJSON(w, resp.Status, resp)
		return
	case len(resp.Accepted) > 0:
		resp.Status = http.StatusMultiStatus
		resp.Type, resp.Title = ProblemPartial, "Some events were not accepted"
	case len(statuses) == 1:
		for s := range statuses {
			resp.Status = s
		}
	default:
		resp.Status = http.StatusBadRequest
	}
	if resp.Type == "" {
		resp.Type, resp.Title = problemFor(resp.Status)
	}
	t.status = resp.Status
	resp.Detail = fmt.Sprintf("%d of %d events accepted; see errors for each rejected event", len(resp.Accepted), len(items))
	if statuses[http.StatusServiceUnavailable] > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(h.cfg.RetryAfterSeconds))
	}
	httpedge.WriteProblem(w, resp.Status, resp)
}

func problemFor(status int) (string, string) {
	switch status {
	case http.StatusForbidden:
		return ProblemForbidden, "Event out of the credential's scope"
	case http.StatusServiceUnavailable:
		return ProblemUnavailable, "Event stream unavailable"
	case http.StatusRequestEntityTooLarge:
		return ProblemTooLarge, "Event too large"
	case http.StatusConflict:
		return ProblemConflict, "Identity of another sender's event"
	}
	return ProblemInvalidEvent, "Invalid event"
}

func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request, t *tally) (*Producer, bool) {
	p, err := h.producers.Authenticate(r)
	var ce *httpedge.CredentialError
	if errors.As(err, &ce) {
		pr := ce.Problem()
		h.problem(w, t, pr.Status, pr.Type, pr.Title, pr.Detail)
		return nil, false
	}
	return p, true
}

func (h *Handler) mode(w http.ResponseWriter, r *http.Request, t *tally) (string, bool) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil {
		mt = ""
	}
	switch {
	case mt == MediaStructured || mt == MediaBatch:
		return mt, true
	case r.Header.Get("Ce-Specversion") != "":
		if !event.IsJSONContentType(ct) {
			h.problem(w, t, http.StatusUnsupportedMediaType, ProblemUnsupportedType, "Unsupported data content type",
				fmt.Sprintf("binary mode needs Content-Type application/json for the data, got %q", ct))
			return "", false
		}
		return "binary", true
	}
	h.problem(w, t, http.StatusUnsupportedMediaType, ProblemUnsupportedType, "Unsupported content type",
		fmt.Sprintf("Content-Type %q is not accepted: use %s (one event), %s (a JSON array), or binary mode (ce-* headers with application/json data)",
			ct, MediaStructured, MediaBatch))
	return "", false
}

// binaryEvent builds the event of a binary-mode request from its ce-*
// headers (percent-decoded, extensions kept) and checks it like a structured one.
func binaryEvent(r *http.Request, body []byte) (event.Event, error) {
	return event.FromBinary(r.Header, r.Header.Get("Content-Type"), body)
}
