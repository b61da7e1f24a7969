package sharing

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/backoff"
	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/natsjs"
)

// Push delivery: the hub POSTs a subscription's events to the agency's URL
// as CloudEvents (structured mode, one event, or a batch of up to Batch),
// signed as Standard Webhooks lays out (webhook-id, webhook-timestamp,
// webhook-signature under the subscription's secret), one request at a
// time in log order. A request that fails is sent again, the same events
// under the same webhook-id, with exponential backoff, until the agency
// answers 2xx: nothing is skipped and the order holds.

// PushStatus is what a push subscription's delivery has done.
type PushStatus struct {
	Delivered    uint64     `json:"delivered"` // events the agency took (2xx)
	Retries      uint64     `json:"retries"`   // requests sent again after a failure
	LastDelivery *time.Time `json:"last_delivery,omitempty"`
	LastError    string     `json:"last_error,omitempty"`
	Waiting      int        `json:"waiting"` // events of the request being retried
	Paused       bool       `json:"paused"`
}

// pusher delivers one push subscription.
type pusher struct {
	paused atomic.Bool
	stop   context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	status PushStatus
}

func (p *pusher) snapshot() PushStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.status
	st.Paused = p.paused.Load()
	return st
}

func (p *pusher) update(f func(*PushStatus)) {
	p.mu.Lock()
	f(&p.status)
	p.mu.Unlock()
}

// newSecret is a subscription's signing secret, as Standard Webhooks
// writes them.
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

func secretBytes(s string) []byte {
	b64, ok := strings.CutPrefix(s, "whsec_")
	b, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil {
		return []byte(s)
	}
	return b
}

// Run delivers every push subscription until ctx ends: those stored when
// it starts, and those made after (startPush).
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	s.runCtx = ctx
	s.mu.Unlock()
	keys, err := s.kv.ListKeys(ctx)
	if err == nil {
		for k := range keys.Keys() {
			if sub, err := s.load(ctx, k); err == nil && sub.Mode == "push" {
				s.startPush(sub)
			}
		}
	}
	<-ctx.Done()
	s.mu.Lock()
	ps := make([]*pusher, 0, len(s.pushers))
	for _, p := range s.pushers {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	for _, p := range ps {
		p.stop()
		<-p.done
	}
	return nil
}

// startPush starts delivering sub, once; before Run, it does nothing (Run
// starts it).
func (s *Service) startPush(sub *Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runCtx == nil || s.pushers[sub.Name] != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.runCtx)
	p := &pusher{stop: cancel, done: make(chan struct{})}
	p.paused.Store(sub.Paused)
	s.pushers[sub.Name] = p
	go func() {
		defer close(p.done)
		s.push(ctx, sub, p)
	}()
}

// stopPush stops delivering a subscription being deleted.
func (s *Service) stopPush(name string) {
	s.mu.Lock()
	p := s.pushers[name]
	delete(s.pushers, name)
	s.mu.Unlock()
	if p != nil {
		p.stop()
		<-p.done
	}
}

func (s *Service) push(ctx context.Context, sub *Subscription, p *pusher) {
	var a *Agency
	for _, ag := range s.agencyList {
		if ag.Name == sub.Agency {
			a = ag
		}
	}
	if a == nil {
		s.log.Warn("push: the agency is no longer in the config; nothing is delivered", zap.String("subscription", sub.Name), zap.String("agency", sub.Agency))
		return
	}
	secret := secretBytes(sub.Secret)
	// Redirects are not followed: the hub posts only under the agency's
	// push_urls.
	client := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	held := &pull{}
	retry := &backoff.Backoff{Min: s.pushBackoffMin, Max: s.pushBackoffMax}
	for ctx.Err() == nil {
		if p.paused.Load() {
			for _, m := range held.held {
				_ = m.InProgress() // a request taken before the pause waits with it
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		cons, err := s.js.Consumer(ctx, natsjs.EventsStream, ConsumerPrefix+sub.Name)
		if err == nil && len(held.held) == 0 {
			err = s.fetch(ctx, cons, held, sub.Batch, 5*time.Second, a, sub)
		}
		if err != nil {
			p.update(func(st *PushStatus) { st.LastError = err.Error() })
			retry.Wait(ctx)
			continue
		}
		if len(held.held) == 0 || p.paused.Load() {
			continue // paused while fetching: the request waits with the pause
		}
		body, contentType := held.sent[0], "application/cloudevents+json"
		if sub.Batch > 1 {
			body, contentType = append(append([]byte("["), bytes.Join(held.sent, []byte(","))...), ']'), "application/cloudevents-batch+json"
		}
		// The same events keep their webhook-id through every retry.
		id := sub.Name + "-" + strconv.FormatUint(held.seqs[0], 10) + "-" + strconv.FormatUint(held.seqs[len(held.seqs)-1], 10)
		if err := s.recordExchange(ctx, "exchange.sent", sub, held.ids); err != nil {
			p.update(func(st *PushStatus) { st.LastError = "the exchange log: " + err.Error() })
			retry.Wait(ctx)
			continue
		}
		err = post(ctx, client, sub.URL, contentType, secret, id, body)
		if err == nil {
			err = s.recordExchange(ctx, "exchange.confirmed", sub, held.ids)
		}
		if err != nil {
			p.update(func(st *PushStatus) { st.Retries++; st.LastError = err.Error(); st.Waiting = len(held.held) })
			for _, m := range held.held {
				_ = m.InProgress() // the retry keeps them
			}
			retry.Wait(ctx)
			continue
		}
		for _, m := range held.held {
			_ = m.Ack()
		}
		now := time.Now().UTC()
		n := len(held.held)
		p.update(func(st *PushStatus) { st.Delivered += uint64(n); st.LastDelivery = &now; st.Waiting = 0 })
		held.held, held.sent, held.seqs, held.ids = nil, nil, nil, nil
		retry.Reset()
	}
}

// post sends one signed request and wants a 2xx.
func post(ctx context.Context, client *http.Client, url, contentType string, secret []byte, id string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	connector.SignRequest(req.Header, secret, id, time.Now(), body)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %d", url, resp.StatusCode)
	}
	return nil
}
