package connector

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iochub/iochub/pkg/httpedge"
)

// A webhook is signed as Standard Webhooks lays out: the message's id, its
// send time (Unix seconds) and "v1," with the base64 HMAC-SHA256 of
// "<id>.<timestamp>.<body>" under the sender's secret. A signature outside
// WebhookTolerance of now is refused, so a captured request cannot be
// played again later.
const (
	HeaderWebhookID        = "Webhook-Id"
	HeaderWebhookTimestamp = "Webhook-Timestamp"
	HeaderWebhookSignature = "Webhook-Signature"
)

// WebhookTolerance is how far a webhook's timestamp may be from now.
const WebhookTolerance = 5 * time.Minute

// MaxWebhookBody bounds a webhook body.
const MaxWebhookBody = 256 << 10

// Sign is one Webhook-Signature entry: "v1," and the base64 HMAC-SHA256 of
// "<id>.<timestamp>.<body>" under secret.
func Sign(secret []byte, id string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "%s.%d.", id, timestamp)
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignRequest sets the three headers of a webhook carrying body, sent at
// at; id names the message (a resend keeps it).
func SignRequest(h http.Header, secret []byte, id string, at time.Time, body []byte) {
	h.Set(HeaderWebhookID, id)
	h.Set(HeaderWebhookTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(HeaderWebhookSignature, Sign(secret, id, at.Unix(), body))
}

// verify names why r's signature of body is refused, or "".
func (w *Webhook) verify(h http.Header, body []byte) string {
	id, ts, sigs := h.Get(HeaderWebhookID), h.Get(HeaderWebhookTimestamp), h.Get(HeaderWebhookSignature)
	if id == "" || ts == "" || sigs == "" {
		return "missing " + HeaderWebhookID + ", " + HeaderWebhookTimestamp + " or " + HeaderWebhookSignature + " (Standard Webhooks: v1,<base64 HMAC-SHA256 of id.timestamp.body>)"
	}
	if len(id) > 256 {
		return HeaderWebhookID + " is over 256 bytes"
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return HeaderWebhookTimestamp + " must be Unix seconds"
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	if d := now().Sub(time.Unix(sec, 0)); d > WebhookTolerance || d < -WebhookTolerance {
		return fmt.Sprintf("%s is %s from now, outside the %s accepted: a signature is good once, when sent", HeaderWebhookTimestamp, d.Round(time.Second), WebhookTolerance)
	}
	for _, secret := range [][]byte{w.Secret, w.PreviousSecret} {
		if len(secret) == 0 {
			continue
		}
		want := Sign(secret, id, sec, body)
		for _, got := range strings.Fields(sigs) {
			if hmac.Equal([]byte(got), []byte(want)) {
				return ""
			}
		}
	}
	return HeaderWebhookSignature + " does not match the message"
}

// Webhook is a push source: an http.Handler taking a sender's POSTs,
// signed as Standard Webhooks says (Sign). A missing, bad or stale signature gets
// 401 and goes nowhere. A signed body is answered 202 only once its event
// is in JetStream (or dead-lettered); otherwise 503 with Retry-After, so the
// sender resends it (its event id makes the resend count once).
type Webhook struct {
	Secret []byte
	// PreviousSecret is accepted too, while senders move to a new Secret.
	PreviousSecret []byte
	// Now is the clock the timestamp is checked against (default time.Now).
	Now func() time.Time
	// Identify names the record a body carries: its key and version (the
	// event id is made from them). A body it cannot read still goes on, to
	// be dead-lettered by the mapping with the raw body.
	Identify func(body []byte) (key, version string)
	// Wait bounds how long a request waits to be stored (default 10 s).
	Wait time.Duration

	mu   sync.Mutex
	open bool
	in   chan delivery
}

type delivery struct {
	rec  Record
	done chan struct{}
}

func (w *Webhook) inbox() chan delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.in == nil {
		w.in = make(chan delivery)
	}
	return w.in
}

func webhookProblem(rw http.ResponseWriter, status int, detail string) {
	if status == http.StatusServiceUnavailable {
		rw.Header().Set("Retry-After", "2")
	}
	httpedge.Problem{Type: "urn:iochub:problem:webhook", Title: http.StatusText(status), Status: status, Detail: detail}.Write(rw)
}

// ServeHTTP checks the signature, then hands the body to the runner and
// waits until it is stored.
func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		webhookProblem(rw, http.StatusMethodNotAllowed, "POST the record")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxWebhookBody+1))
	if err != nil {
		webhookProblem(rw, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	if len(body) > MaxWebhookBody {
		webhookProblem(rw, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", MaxWebhookBody))
		return
	}
	if why := w.verify(r.Header, body); why != "" {
		webhookProblem(rw, http.StatusUnauthorized, why)
		return
	}
	key, version := "", ""
	if w.Identify != nil {
		key, version = w.Identify(body)
	}
	if key == "" {
		sum := sha256.Sum256(body)
		key, version = "body-"+hex.EncodeToString(sum[:8]), "1"
	}
	d := delivery{rec: Record{Key: key, Version: version, Data: body}, done: make(chan struct{})}
	d.rec.Ref = d.done
	w.mu.Lock()
	open := w.open
	w.mu.Unlock()
	if !open {
		webhookProblem(rw, http.StatusServiceUnavailable, "the hub is not taking records now; send it again")
		return
	}
	wait := w.Wait
	if wait <= 0 {
		wait = 10 * time.Second
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case w.inbox() <- d:
	case <-t.C:
		webhookProblem(rw, http.StatusServiceUnavailable, "the hub is busy; send it again")
		return
	case <-r.Context().Done():
		return
	}
	select {
	case <-d.done:
		rw.WriteHeader(http.StatusAccepted)
	case <-t.C:
		webhookProblem(rw, http.StatusServiceUnavailable, "not stored in time; send it again (it will count once)")
	case <-r.Context().Done():
	}
}

// Connect starts taking requests; a push source has no checkpoint.
func (w *Webhook) Connect(context.Context, string) error {
	w.mu.Lock()
	w.open = true
	w.mu.Unlock()
	return nil
}

// Read waits for the next signed request.
func (w *Webhook) Read(ctx context.Context) (Record, error) {
	select {
	case d := <-w.inbox():
		return d.rec, nil
	case <-ctx.Done():
		return Record{}, ctx.Err()
	}
}

// Ack answers the request 202.
func (w *Webhook) Ack(_ context.Context, r Record) error {
	if done, ok := r.Ref.(chan struct{}); ok {
		close(done)
	}
	return nil
}

// Close stops taking requests: they get 503 until Connect.
func (w *Webhook) Close() error {
	w.mu.Lock()
	w.open = false
	w.mu.Unlock()
	return nil
}
