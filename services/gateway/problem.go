package gateway

import (
	"net/http"
	"strconv"

	"github.com/iochub/iochub/pkg/httpedge"
)

// Problem types, the "type" member of a problem document.
const (
	ProblemInvalidEvent    = "urn:iochub:problem:invalid-event"
	ProblemMalformed       = "urn:iochub:problem:malformed-request"
	ProblemUnsupportedType = "urn:iochub:problem:unsupported-content-type"
	ProblemUnauthorized    = httpedge.ProblemUnauthorized
	ProblemForbidden       = httpedge.ProblemForbidden
	ProblemTooLarge        = "urn:iochub:problem:too-large"
	ProblemUnavailable     = httpedge.ProblemUnavailable
	ProblemPartial         = "urn:iochub:problem:partially-accepted"
	ProblemConflict        = "urn:iochub:problem:identity-conflict"
	ProblemRateLimited     = "urn:iochub:problem:rate-limited"
)

// FieldError names one failing place of one event.
type FieldError struct {
	Index   int    `json:"index"`            // position in the batch (0 for a single event)
	ID      string `json:"id,omitempty"`     // the event's id, when it has one
	Source  string `json:"source,omitempty"` // the event's source, when it has one
	Pointer string `json:"pointer"`          // JSON pointer into the event, e.g. /data/status
	Rule    string `json:"rule"`             // the rule that failed, e.g. enum, required
	Message string `json:"message"`
}

// Result is the outcome of one event.
type Result struct {
	Index     int          `json:"index"`
	ID        string       `json:"id,omitempty"`
	Source    string       `json:"source,omitempty"`
	Status    int          `json:"status"` // 202 stored; otherwise why not
	Duplicate bool         `json:"duplicate,omitempty"`
	Errors    []FieldError `json:"errors,omitempty"`
}

// Response is the body of every answer to POST /v1/events: a problem document
// (RFC 9457) when anything failed, with the accepted ids and each event's result.
type Response struct {
	Type     string       `json:"type,omitempty"`
	Title    string       `json:"title,omitempty"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Accepted []Accepted   `json:"accepted"`
	Errors   []FieldError `json:"errors,omitempty"`
	Results  []Result     `json:"results,omitempty"`
}

// Accepted is an event stored in JetStream.
type Accepted struct {
	ID        string `json:"id"`
	Source    string `json:"source"`
	Duplicate bool   `json:"duplicate,omitempty"` // it was already stored: a retry
}

// problem refuses a request whole, and counts its events (one when they
// were not yet read) under the problem's reason.
func (h *Handler) problem(w http.ResponseWriter, t *tally, status int, typ, title, detail string) {
	t.status = status
	t.reject(reasonOf(typ), max(t.events, 1))
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(h.cfg.RetryAfterSeconds))
	}
	if status == http.StatusUnauthorized {
		httpedge.Challenge(w)
	}
	httpedge.WriteProblem(w, status, Response{Type: typ, Title: title, Status: status, Detail: detail, Accepted: []Accepted{}})
}
