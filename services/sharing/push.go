package sharing

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iochub/iochub/pkg/audit"
	"github.com/iochub/iochub/pkg/backoff"
	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/dlq"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/natsjs"
)

// Push delivery: the hub POSTs a subscription's events to the agency's URL
// as CloudEvents (structured mode, one event, or a batch of up to Batch),
// signed as Standard Webhooks lays out (webhook-id, webhook-timestamp,
// webhook-signature under the subscription's secret), one request at a
// time in log order. A request that fails is sent again, the same events
// under the same webhook-id, with exponential backoff, until the agency
// answers 2xx: nothing is skipped and the order holds. An agency that
// takes nothing for the subscription's give-up time (24 h unless it says)
// gets what follows in the subscription's own dead letters (IOC_DLQ,
// dlq.subscription.<name>) until it takes a request again; it asks for
// them again with POST /v1/subscriptions/{name}/dead-letters/replay.

// PushStatus is what a push subscription's delivery has done.
type PushStatus struct {
	Delivered    uint64     `json:"delivered"` // events the agency took (2xx)
	Retries      uint64     `json:"retries"`   // requests sent again after a failure
	LastDelivery *time.Time `json:"last_delivery,omitempty"`
	LastError    string     `json:"last_error,omitempty"`
	Waiting      int        `json:"waiting"` // events of the request being retried
	Paused       bool       `json:"paused"`
	// DeadLettered: events moved to the subscription's dead letters after
	// its give-up time (since the hub started); DeadLetters: how many wait
	// there now; Replayed: letters delivered by a replay.
	DeadLettered uint64 `json:"dead_lettered"`
	DeadLetters  uint64 `json:"dead_letters"`
	Replayed     uint64 `json:"replayed"`
}

// pusher delivers one push subscription.
type pusher struct {
	paused atomic.Bool
	replay atomic.Bool // the agency asked for its dead letters again
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
			if sub, err := s.load(ctx, k); err == nil && sub.delivered() {
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
	giveUp := sub.giveUp()
	send := s.sender(sub)
	held := &pull{}
	recorded := false          // held's exchange.sent is in the log
	var failingSince time.Time // the first failure since the agency last took a request
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
		if p.replay.Load() && len(held.held) == 0 {
			if err := s.replayLetters(ctx, sub, send, p); err != nil {
				p.update(func(st *PushStatus) { st.LastError = "replay of the dead letters: " + err.Error() })
			}
			p.replay.Store(false)
			continue
		}
		cons, err := s.js.Consumer(ctx, natsjs.EventsStream, ConsumerPrefix+sub.Name)
		if err == nil && len(held.held) == 0 {
			err = s.fetch(ctx, cons, held, sub.requestSize(), 5*time.Second, a, sub)
			recorded = false
		}
		if err != nil {
			p.update(func(st *PushStatus) { st.LastError = err.Error() })
			retry.Wait(ctx)
			continue
		}
		if len(held.held) == 0 || p.paused.Load() {
			continue // paused while fetching: the request waits with the pause
		}
		// The same events keep their webhook-id through every retry.
		id := sub.Name + "-" + strconv.FormatUint(held.seqs[0], 10) + "-" + strconv.FormatUint(held.seqs[len(held.seqs)-1], 10)
		if !recorded {
			if err := s.recordExchange(ctx, "exchange.sent", sub, held.ids); err != nil {
				p.update(func(st *PushStatus) { st.LastError = "the exchange log: " + err.Error() })
				retry.Wait(ctx)
				continue
			}
			recorded = true
		}
		err = send(ctx, id, held.sent, held.ids)
		if err == nil && sub.Mode == "push" && !s.recordConfirmed(ctx, sub, held, p, retry) {
			continue // stopping: unacknowledged, sent again after the restart
		}
		if err != nil && ctx.Err() == nil {
			now := time.Now()
			if failingSince.IsZero() {
				failingSince = now
			}
			if now.Sub(failingSince) >= giveUp {
				// Down past the give-up time: these events go to the
				// subscription's own dead letters, and the next request is
				// tried once before its events follow them.
				if derr := s.deadLetter(ctx, sub, held, err); derr != nil {
					p.update(func(st *PushStatus) { st.LastError = "dead letters: " + derr.Error() })
					retry.Wait(ctx)
					continue
				}
				n := len(held.held)
				p.update(func(st *PushStatus) { st.DeadLettered += uint64(n); st.LastError = err.Error(); st.Waiting = 0 })
				held.held, held.sent, held.seqs, held.ids = nil, nil, nil, nil
				continue
			}
			p.update(func(st *PushStatus) { st.Retries++; st.LastError = err.Error(); st.Waiting = len(held.held) })
			for _, m := range held.held {
				_ = m.InProgress() // the retry keeps them
			}
			retry.Wait(ctx)
			continue
		}
		if err != nil {
			continue // stopping: the events stay unacknowledged on the log
		}
		for _, m := range held.held {
			_ = m.Ack()
		}
		now := time.Now().UTC()
		n := len(held.held)
		p.update(func(st *PushStatus) { st.Delivered += uint64(n); st.LastDelivery = &now; st.Waiting = 0 })
		held.held, held.sent, held.seqs, held.ids = nil, nil, nil, nil
		failingSince = time.Time{}
		retry.Reset()
	}
}

// sender delivers events (whose identities are ids) in one request named
// id, and reports whether the agency (or its stream) took them all.
type sender func(ctx context.Context, id string, events [][]byte, ids []audit.Exchanged) error

// sender is how the subscription's events leave: a signed POST to its URL
// (push), or into the agency's own stream (nats), each event under its
// identity so that a send again after a failure stores it once.
func (s *Service) sender(sub *Subscription) sender {
	if sub.Mode == "nats" {
		return func(ctx context.Context, _ string, events [][]byte, ids []audit.Exchanged) error {
			for i, body := range events {
				m := nats.NewMsg(sub.NATS.Subject)
				m.Data = body
				m.Header.Set("Content-Type", "application/cloudevents+json")
				m.Header.Set(jetstream.MsgIDHeader, sub.Name+":"+event.Event{Source: ids[i].Source, ID: ids[i].ID}.DedupID())
				if _, err := s.js.PublishMsg(ctx, m); err != nil {
					return fmt.Errorf("%s: %w", sub.NATS.Stream, err)
				}
			}
			return nil
		}
	}
	secret := secretBytes(sub.Secret)
	// Redirects are not followed: the hub posts only under the agency's
	// push_urls.
	client := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return func(ctx context.Context, id string, events [][]byte, _ []audit.Exchanged) error {
		body, contentType := requestBody(events, sub.Batch)
		return post(ctx, client, sub.URL, contentType, secret, id, body)
	}
}

// shareMaxBytes bounds an agency's stream: a full one refuses what the hub
// sends, which waits on IOC_EVENTS, and past the give-up time goes to the
// subscription's dead letters.
const shareMaxBytes = 256 << 20

// declareNATS makes the agency's stream, if it is not there, and the
// subscription's consumer on it.
func (s *Service) declareNATS(ctx context.Context, place *NATSPlace) error {
	agency := strings.TrimPrefix(place.Stream, "IOC_SHARE_")
	_, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: place.Stream, Subjects: []string{"share." + agency + ".>"},
		Description: "iochub: what agency " + agency + " is granted, for its NATS users to read", Storage: jetstream.FileStorage,
		Retention: jetstream.WorkQueuePolicy, MaxBytes: shareMaxBytes, Discard: jetstream.DiscardNew, Duplicates: 2 * time.Minute})
	if err != nil {
		return fmt.Errorf("stream %s: %w", place.Stream, err)
	}
	_, err = s.js.CreateOrUpdateConsumer(ctx, place.Stream, jetstream.ConsumerConfig{Durable: place.Consumer, FilterSubject: place.Subject,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: defaultAckWait, MaxAckPending: 10 * maxPull, MaxDeliver: -1,
		Description: "iochub subscription " + place.Consumer + " of " + agency})
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", place.Consumer, place.Stream, err)
	}
	return nil
}

// recordConfirmed appends exchange.confirmed of the events the agency
// took, trying again until the log holds it: the agency has them, so a
// failing log is not a failing delivery (no retry of the request, no
// give-up). It reports false when ctx ended first.
func (s *Service) recordConfirmed(ctx context.Context, sub *Subscription, held *pull, p *pusher, retry *backoff.Backoff) bool {
	for {
		err := s.recordExchange(ctx, "exchange.confirmed", sub, held.ids)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		p.update(func(st *PushStatus) { st.LastError = "the exchange log: " + err.Error() })
		for _, m := range held.held {
			_ = m.InProgress()
		}
		retry.Wait(ctx)
	}
}

// requestBody is one event, or a batch when the subscription asks for one.
func requestBody(events [][]byte, batch int) ([]byte, string) {
	if batch > 1 {
		return append(append([]byte("["), bytes.Join(events, []byte(","))...), ']'), "application/cloudevents-batch+json"
	}
	return events[0], "application/cloudevents+json"
}

// deadLetter moves held's events to the subscription's dead letters, then
// settles them on the log: a crash between the two leaves them on the log,
// and the letters' identities make the second give-up add nothing.
func (s *Service) deadLetter(ctx context.Context, sub *Subscription, held *pull, cause error) error {
	now := time.Now()
	for i, m := range held.held {
		dedup := event.Event{Source: held.ids[i].Source, ID: held.ids[i].ID}.DedupID()
		if _, err := s.js.PublishMsg(ctx, dlq.ForDelivery(sub.Name, m.Subject(), held.seqs[i], dedup, held.sent[i], "not delivered within the give-up time: "+cause.Error(), now)); err != nil {
			return err
		}
	}
	if err := s.recordExchange(ctx, "exchange.dead_lettered", sub, held.ids); err != nil {
		return err
	}
	for _, m := range held.held {
		_ = m.Ack()
	}
	s.log.Warn("push: events dead-lettered after the give-up time", zap.String("subscription", sub.Name), zap.Int("events", len(held.held)), zap.Error(cause))
	return nil
}

// replayLetters delivers the subscription's dead letters again, oldest
// first, in requests of its batch size, each letter removed once the
// agency took it; the first failure stops the replay and keeps the rest.
func (s *Service) replayLetters(ctx context.Context, sub *Subscription, send sender, p *pusher) error {
	q := dlq.Queue{JS: s.js}
	var after uint64
	for ctx.Err() == nil {
		letters, err := q.DeliveryLetters(ctx, sub.Name, after, sub.requestSize())
		if err != nil || len(letters) == 0 {
			return err
		}
		events := make([][]byte, len(letters))
		ids := make([]audit.Exchanged, len(letters))
		for i, l := range letters {
			events[i] = l.Event
			sum := sha256.Sum256(l.Event)
			ids[i] = audit.Exchanged{Source: l.Source, ID: l.ID, SHA256: hex.EncodeToString(sum[:])}
		}
		id := sub.Name + "-dlq-" + strconv.FormatUint(letters[0].Seq, 10) + "-" + strconv.FormatUint(letters[len(letters)-1].Seq, 10)
		if err := s.recordExchange(ctx, "exchange.sent", sub, ids); err != nil {
			return err
		}
		if err := send(ctx, id, events, ids); err != nil {
			return err
		}
		if sub.Mode == "push" {
			if err := s.recordExchange(ctx, "exchange.confirmed", sub, ids); err != nil {
				return err
			}
		}
		for _, l := range letters {
			if err := q.Purge(ctx, l.Seq); err != nil {
				return err
			}
		}
		n := len(letters)
		now := time.Now().UTC()
		p.update(func(st *PushStatus) { st.Delivered += uint64(n); st.Replayed += uint64(n); st.LastDelivery = &now })
		after = letters[len(letters)-1].Seq
	}
	return ctx.Err()
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
