package sim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	"github.com/iochub/iochub/pkg/backoff"
	"github.com/iochub/iochub/pkg/connector"
)

// WebhookSender is a system that notifies by signed webhooks (the
// field-report portal, the traffic incident centre): it sends each queued
// body in order, signed, resending until the hub answers 202; down, it
// sends nothing.
type WebhookSender struct {
	URL    string
	Secret []byte

	mu    sync.Mutex
	queue [][]byte
	down  bool
}

// Queue adds bodies to send.
func (s *WebhookSender) Queue(bodies ...[]byte) {
	s.mu.Lock()
	s.queue = append(s.queue, bodies...)
	s.mu.Unlock()
}

// Pending is how many bodies are not yet taken.
func (s *WebhookSender) Pending() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.queue) }

// SetDown stops or resumes sending.
func (s *WebhookSender) SetDown(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

// Run sends until ctx is done.
func (s *WebhookSender) Run(ctx context.Context) {
	retry := backoff.Backoff{Min: 50 * time.Millisecond, Max: 2 * time.Second}
	for ctx.Err() == nil {
		s.mu.Lock()
		var body []byte
		if !s.down && len(s.queue) > 0 {
			body = s.queue[0]
		}
		s.mu.Unlock()
		if body == nil {
			sleep(ctx, 10*time.Millisecond)
			continue
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		sum := sha256.Sum256(body) // the message's id: the same on every resend
		connector.SignRequest(req.Header, s.Secret, "msg_"+hex.EncodeToString(sum[:12]), time.Now(), body)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusAccepted {
				s.mu.Lock()
				s.queue = s.queue[1:]
				s.mu.Unlock()
				retry.Reset()
				continue
			}
		}
		retry.Wait(ctx)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
