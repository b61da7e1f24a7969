package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Problem types, the "type" member of a problem document.
const (
	ProblemInvalidEvent    = "urn:iochub:problem:invalid-event"
	ProblemMalformed       = "urn:iochub:problem:malformed-request"
	ProblemUnsupportedType = "urn:iochub:problem:unsupported-content-type"
	ProblemUnauthorized    = "urn:iochub:problem:unauthorized"
	ProblemForbidden       = "urn:iochub:problem:forbidden"
	ProblemTooLarge        = "urn:iochub:problem:too-large"
	ProblemUnavailable     = "urn:iochub:problem:unavailable"
	ProblemPartial         = "urn:iochub:problem:partially-accepted"
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

func writeJSON(w http.ResponseWriter, status int, body any, problem bool) {
	ct := "application/json"
	if problem {
		ct = "application/problem+json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func (h *Handler) problem(w http.ResponseWriter, status int, typ, title, detail string, errs []FieldError) {
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(h.cfg.RetryAfterSeconds))
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="iochub"`)
	}
	writeJSON(w, status, Response{Type: typ, Title: title, Status: status, Detail: detail, Accepted: []Accepted{}, Errors: errs}, true)
}
