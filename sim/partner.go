package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/backoff"
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
