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
	post := func(sig string) int {
		req, _ := http.NewRequest(http.MethodPost, hs.URL, bytes.NewReader(body))
		if sig != "" {
			req.Header.Set(connector.SignatureHeader, sig)
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
	for name, sig := range map[string]string{"missing": "", "wrong": connector.Sign([]byte("other"), body), "garbage": "sha256=??"} {
		if got := post(sig); got != http.StatusUnauthorized {
			t.Errorf("%s signature: %d, want 401", name, got)
		}
	}
	select {
	case r := <-read:
		t.Fatalf("a badly signed body was read: %s", r.Data)
	case <-time.After(100 * time.Millisecond):
	}
	if got := post(connector.Sign(secret, body)); got != http.StatusAccepted {
		t.Fatalf("signed: %d, want 202", got)
	}
	if r := <-read; !bytes.Equal(r.Data, body) || r.Key != "k" {
		t.Errorf("read %+v", r)
	}
	_ = w.Close()
	if got := post(connector.Sign(secret, body)); got != http.StatusServiceUnavailable {
		t.Errorf("closed: %d, want 503 so the sender resends", got)
	}
}
