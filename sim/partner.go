package sim

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/backoff"
	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/httpedge"
)

// Partner is a simulated partner agency's system: it subscribes to the
// hub's events with its token (PUT /v1/subscriptions/{name}) and pulls them
// for ever, confirming each answer with the next call, as a real
// subscriber would.
type Partner struct {
	Hub          string   // the hub's base URL
	Token        string   // the agency's bearer token
	Subscription string   // its subscription's name
	Types        []string // what it subscribes to
	Log          *zap.Logger

	Received int // events received, confirmed by the next pull
}

// Run subscribes, then pulls until ctx ends; the hub being down or
// restarting is waited out.
func (p *Partner) Run(ctx context.Context) error {
	body, _ := json.Marshal(map[string]any{"types": p.Types, "start": "beginning", "mode": "pull"})
	retry := &backoff.Backoff{Min: time.Second, Max: 30 * time.Second}
	for ctx.Err() == nil {
		code, b, err := p.call(ctx, http.MethodPut, "/v1/subscriptions/"+p.Subscription, body)
		if err == nil && (code == http.StatusCreated || code == http.StatusOK) {
			break
		}
		p.Log.Warn("partner: subscribe", zap.Int("status", code), zap.ByteString("answer", b), zap.Error(err))
		retry.Wait(ctx)
	}
	cursor, lastReport := "0", time.Now()
	for ctx.Err() == nil {
		code, b, err := p.call(ctx, http.MethodGet, "/v1/subscriptions/"+p.Subscription+"/events?max=500&wait=20&after="+cursor, nil)
		if err != nil || code != http.StatusOK {
			if ctx.Err() == nil {
				p.Log.Warn("partner: pull", zap.Int("status", code), zap.Error(err))
				retry.Wait(ctx)
			}
			continue
		}
		retry.Reset()
		var ans struct {
			Events  []json.RawMessage `json:"events"`
			Cursor  string            `json:"cursor"`
			Pending uint64            `json:"pending"`
		}
		if err := json.Unmarshal(b, &ans); err != nil {
			return fmt.Errorf("partner: the hub's answer: %w", err)
		}
		if ans.Cursor != cursor {
			p.Received += len(ans.Events)
		}
		cursor = ans.Cursor
		if time.Since(lastReport) > time.Minute {
			p.Log.Info("partner agency", zap.String("subscription", p.Subscription), zap.Int("received", p.Received), zap.Uint64("pending", ans.Pending))
			lastReport = time.Now()
		}
	}
	return nil
}

func (p *Partner) call(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, p.Hub+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+p.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, b, err
}

// PushReceiver is a simulated partner agency's HTTP endpoint for a push
// subscription: it checks each request's Standard Webhooks signature under
// the subscription's secret and counts the events.
type PushReceiver struct {
	Hub          string   // the hub's base URL
	Token        string   // the agency's bearer token
	Subscription string   // its push subscription's name
	Types        []string // what it subscribes to
	Listen       string   // where it listens, under the agency's push_urls
	Log          *zap.Logger

	mu       sync.Mutex
	secret   []byte
	received int
	refused  int
}

// Received is how many events it took and how many requests it refused
// (a bad signature).
func (r *PushReceiver) Received() (events, refused int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.received, r.refused
}

// Run listens, subscribes (a subscription made before keeps its secret
// only in the hub: the receiver then makes it again), and serves until ctx
// ends.
func (r *PushReceiver) Run(ctx context.Context) error {
	l, err := net.Listen("tcp", r.Listen)
	if err != nil {
		return err
	}
	hs := httpedge.NewServer(http.HandlerFunc(r.serve), httpedge.ServerConfig{})
	go func() { _ = hs.Serve(l) }()
	defer hs.Close()
	p := &Partner{Hub: r.Hub, Token: r.Token, Log: r.Log}
	body, _ := json.Marshal(map[string]any{"types": r.Types, "start": "now", "mode": "push", "url": "http://" + l.Addr().String() + "/events", "batch": 50})
	retry := &backoff.Backoff{Min: time.Second, Max: 30 * time.Second}
	for ctx.Err() == nil {
		code, b, err := p.call(ctx, http.MethodPut, "/v1/subscriptions/"+r.Subscription, body)
		if err == nil && code == http.StatusOK { // made before: its secret is not answered again
			_, _, err = p.call(ctx, http.MethodDelete, "/v1/subscriptions/"+r.Subscription, nil)
			continue
		}
		if err == nil && code == http.StatusCreated {
			var sub struct {
				Secret string `json:"signing_secret"`
			}
			if err := json.Unmarshal(b, &sub); err == nil {
				key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(sub.Secret, "whsec_"))
				r.mu.Lock()
				r.secret = key
				r.mu.Unlock()
				break
			}
		}
		r.Log.Warn("push partner: subscribe", zap.Int("status", code), zap.ByteString("answer", b), zap.Error(err))
		retry.Wait(ctx)
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			n, bad := r.Received()
			r.Log.Info("push partner agency", zap.String("subscription", r.Subscription), zap.Int("received", n), zap.Int("refused", bad))
		}
	}
}

func (r *PushReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<20))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ts, _ := strconv.ParseInt(req.Header.Get(connector.HeaderWebhookTimestamp), 10, 64)
	if r.secret == nil || req.Header.Get(connector.HeaderWebhookSignature) != connector.Sign(r.secret, req.Header.Get(connector.HeaderWebhookID), ts, body) {
		r.refused++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var evs []json.RawMessage
	if err := json.Unmarshal(body, &evs); err != nil {
		evs = []json.RawMessage{body} // one event, structured mode
	}
	r.received += len(evs)
	w.WriteHeader(http.StatusNoContent)
}
