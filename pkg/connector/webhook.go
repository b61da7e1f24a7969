package connector

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/iochub/iochub/pkg/httpedge"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of a webhook's
// body under the sender's secret.
const SignatureHeader = "X-Signature"

// MaxWebhookBody bounds a webhook body.
const MaxWebhookBody = 256 << 10

// Sign is the SignatureHeader value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Webhook is a push source: an http.Handler taking a sender's POSTs,
// signed with HMAC-SHA256 over the body. A missing or bad signature gets
// 401 and goes nowhere. A signed body is answered 202 only once its event
// is in JetStream (or dead-lettered); otherwise 503 with Retry-After, so the
// sender resends it (its event id makes the resend count once).
type Webhook struct {
	Secret []byte
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
	sig := r.Header.Get(SignatureHeader)
	if sig == "" {
		webhookProblem(rw, http.StatusUnauthorized, "missing "+SignatureHeader+": sha256=<hex HMAC-SHA256 of the body>")
		return
	}
	if !hmac.Equal([]byte(sig), []byte(Sign(w.Secret, body))) {
		webhookProblem(rw, http.StatusUnauthorized, SignatureHeader+" does not match the body")
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
