// Package simtest holds the simulated systems' adapters to the connectors'
// conformance suite, for tests only (it imports testing).
package simtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/sim"
)

// WebhookSystem is a system that notifies by signed webhooks, for the
// connectors' conformance suite (connectortest.System): a WebhookSender in
// front of whichever webhook the current runner serves, so a restarted
// runner gets what the sender resends.
type WebhookSystem struct {
	Secret     []byte
	NewWebhook func() *connector.Webhook
	Mapper     connector.Mapper
	Body       func(n int) []byte // the n-th good body (from 1)
	Malformed  []byte             // a body the mapping rejects
	Personal   []string           // personal data in Malformed, never to be seen in clear past the hub

	mu      sync.Mutex
	sender  *sim.WebhookSender
	current *connector.Webhook
	n       int
}

// StartWebhookSystem serves and sends until the test ends.
func StartWebhookSystem(t *testing.T, s *WebhookSystem) *WebhookSystem {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		cur := s.current
		s.mu.Unlock()
		if cur == nil {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		cur.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	s.sender = &sim.WebhookSender{URL: hs.URL, Secret: s.Secret}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go s.sender.Run(ctx)
	return s
}

// Source is a new webhook, which the server now hands requests to.
func (s *WebhookSystem) Source(*testing.T) connector.Source {
	w := s.NewWebhook()
	w.Wait = 2 * time.Second
	s.mu.Lock()
	s.current = w
	s.mu.Unlock()
	return w
}

// Map is the connector's mapping.
func (s *WebhookSystem) Map() connector.Mapper { return s.Mapper }

// Add queues n good bodies.
func (s *WebhookSystem) Add(_ *testing.T, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.n++
		s.sender.Queue(s.Body(s.n))
	}
}

// AddMalformed queues the malformed body.
func (s *WebhookSystem) AddMalformed(*testing.T) { s.sender.Queue(s.Malformed) }

// PersonalData is what of Malformed must never be stored in clear.
func (s *WebhookSystem) PersonalData() []string { return s.Personal }

// SetAvailable stops or resumes the sender.
func (s *WebhookSystem) SetAvailable(_ *testing.T, up bool) { s.sender.SetDown(!up) }
