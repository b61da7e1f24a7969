package connector_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/connector"
)

// TestWebhookSignature: a missing or bad signature is 401 and nothing is
// read; a good one is read, and answered 202 once acked.
func TestWebhookSignature(t *testing.T) {
	secret := []byte("webhook-test-secret-0123")
	w := &connector.Webhook{Secret: secret, Identify: func([]byte) (string, string) { return "k", "1" }, Wait: 2 * time.Second}
	ctx := context.Background()
	_ = w.Connect(ctx, "")
	hs := httptest.NewServer(w)
	defer hs.Close()
	body := []byte(`{"x":1}`)
	post := func(sign func(http.Header)) int {
		req, _ := http.NewRequest(http.MethodPost, hs.URL, bytes.NewReader(body))
		if sign != nil {
			sign(req.Header)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	read := make(chan connector.Record, 4)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			r, err := w.Read(rctx)
			if err != nil {
				return
			}
			read <- r
			_ = w.Ack(rctx, r)
		}
	}()
	now := time.Now()
	for name, sign := range map[string]func(http.Header){
		"missing": nil,
		"wrong":   func(h http.Header) { connector.SignRequest(h, []byte("other"), "msg_1", now, body) },
		"garbage": func(h http.Header) {
			connector.SignRequest(h, secret, "msg_1", now, body)
			h.Set(connector.HeaderWebhookSignature, "v1,??")
		},
		// A request captured and played again ten minutes later (finding L2).
		"replayed later":  func(h http.Header) { connector.SignRequest(h, secret, "msg_1", now.Add(-10*time.Minute), body) },
		"from the future": func(h http.Header) { connector.SignRequest(h, secret, "msg_1", now.Add(10*time.Minute), body) },
		"other id": func(h http.Header) {
			connector.SignRequest(h, secret, "msg_1", now, body)
			h.Set(connector.HeaderWebhookID, "msg_2")
		},
	} {
		if got := post(sign); got != http.StatusUnauthorized {
			t.Errorf("%s signature: %d, want 401", name, got)
		}
	}
	select {
	case r := <-read:
		t.Fatalf("a badly signed body was read: %s", r.Data)
	case <-time.After(100 * time.Millisecond):
	}
	if got := post(func(h http.Header) { connector.SignRequest(h, secret, "msg_1", now, body) }); got != http.StatusAccepted {
		t.Fatalf("signed: %d, want 202", got)
	}
	if r := <-read; !bytes.Equal(r.Data, body) || r.Key != "k" {
		t.Errorf("read %+v", r)
	}
	_ = w.Close()
	if got := post(func(h http.Header) { connector.SignRequest(h, secret, "msg_1", now, body) }); got != http.StatusServiceUnavailable {
		t.Errorf("closed: %d, want 503 so the sender resends", got)
	}
}

// TestWebhookSecretRotation: while senders move to a new secret, both the
// new one and the previous one are accepted; a third is not.
func TestWebhookSecretRotation(t *testing.T) {
	w := &connector.Webhook{Secret: []byte("new-secret-0123456789"), PreviousSecret: []byte("old-secret-0123456789"),
		Identify: func([]byte) (string, string) { return "k", "1" }, Wait: 50 * time.Millisecond}
	body := []byte(`{"x":1}`)
	for _, tt := range []struct {
		secret string
		want   int
	}{{"new-secret-0123456789", http.StatusServiceUnavailable}, {"old-secret-0123456789", http.StatusServiceUnavailable}, {"third-secret-012345678", http.StatusUnauthorized}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		connector.SignRequest(req.Header, []byte(tt.secret), "msg_1", time.Now(), body)
		w.ServeHTTP(rec, req) // not connected: a good signature gets 503, a bad one 401
		if rec.Code != tt.want {
			t.Errorf("%s: %d, want %d", tt.secret, rec.Code, tt.want)
		}
	}
}
