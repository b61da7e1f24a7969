package main

// Phase "delivery": partner subscriptions beside the aggregator. The same
// throughput run on two fresh hubs, one without subscriptions and one with
// a push subscriber (an HTTP receiver in this process) and a pull
// subscriber (a long-poll loop here), both granted every event: the
// aggregator's rate with and without them, and how fast each subscriber
// receives every event.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/iochub/iochub/pkg/httpedge"
)

const partnerToken = "bench-partner-token-0123456789"

type deliveryFigures struct {
	aggWithout, aggWith float64 // events/s materialized
	cpuWithout, cpuWith float64 // hub CPU µs per event
	push, pull          float64 // events/s each subscriber received, from the first post to its last event
}

// counter counts the distinct events a subscriber received and when it
// had them all.
type counter struct {
	mu   sync.Mutex
	seen map[string]bool
	want int
	done chan struct{}
	at   time.Time
}

func newCounter(want int) *counter {
	return &counter{seen: map[string]bool{}, want: want, done: make(chan struct{})}
}

func (c *counter) add(body []byte) error {
	var evs []struct {
		Source string `json:"source"`
		ID     string `json:"id"`
	}
	if err := json.Unmarshal(body, &evs); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range evs {
		c.seen[e.Source+" "+e.ID] = true
	}
	if len(c.seen) >= c.want && c.at.IsZero() {
		c.at = time.Now()
		close(c.done)
	}
	return nil
}

func benchDelivery(o options) (f deliveryFigures, err error) {
	recv, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return f, err
	}
	defer recv.Close()
	yaml := fmt.Sprintf("sharing:\n  agencies:\n    - name: bench-partner\n      token_sha256: %q\n      push_urls: [\"http://%s/\"]\n      grants:\n        - {types: [\"vn.ioc.*\"], areas: [\"*\"]}\n",
		httpedge.HashToken(partnerToken), recv.Addr())
	spec := hubSpec{services: "gateway,aggregator,sharing", yaml: yaml}
	n := o.deliveryEvents
	run := o
	run.events = n

	// Without subscriptions.
	h, err := startHubSpec(o, spec)
	if err != nil {
		return f, err
	}
	cpu0 := h.cpuSeconds()
	_, f.aggWithout, err = benchThroughput(run, h)
	f.cpuWithout = (h.cpuSeconds() - cpu0) / float64(n) * 1e6
	h.stop()
	if err != nil {
		return f, fmt.Errorf("without subscriptions: %w", err)
	}

	// With a push and a pull subscription, made before the first post.
	h, err = startHubSpec(o, spec)
	if err != nil {
		return f, err
	}
	defer h.stop()
	pushed, pulled := newCounter(n), newCounter(n)
	srv := httpedge.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := pushed.add(b); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}), httpedge.ServerConfig{})
	go func() { _ = srv.Serve(recv) }()
	defer srv.Close()
	for name, body := range map[string]string{
		"bench-push": fmt.Sprintf(`{"types": ["vn.ioc.*"], "mode": "push", "url": "http://%s/events", "batch": 100}`, recv.Addr()),
		"bench-pull": `{"types": ["vn.ioc.*"]}`,
	} {
		if code, b, err := partnerCall(h, http.MethodPut, "/v1/subscriptions/"+name, []byte(body)); err != nil || code != http.StatusCreated {
			return f, fmt.Errorf("subscription %s: %d %s %v", name, code, b, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pullErr := make(chan error, 1)
	go func() {
		if err := pullAll(ctx, h, pulled); err != nil {
			pullErr <- err
		}
	}()
	start := time.Now()
	cpu0 = h.cpuSeconds()
	_, f.aggWith, err = benchThroughput(run, h)
	if err != nil {
		return f, fmt.Errorf("with subscriptions: %w", err)
	}
	for _, c := range []*counter{pushed, pulled} {
		select {
		case <-c.done:
		case err := <-pullErr:
			return f, fmt.Errorf("pull: %w", err)
		case <-time.After(10 * time.Minute):
			c.mu.Lock()
			got := len(c.seen)
			c.mu.Unlock()
			return f, fmt.Errorf("a subscriber had %d of %d events after 10 minutes", got, n)
		}
	}
	f.cpuWith = (h.cpuSeconds() - cpu0) / float64(n) * 1e6
	f.push = float64(n) / pushed.at.Sub(start).Seconds()
	f.pull = float64(n) / pulled.at.Sub(start).Seconds()
	return f, nil
}

// pullAll pulls bench-pull, confirming each answer with the next call,
// until it has every event.
func pullAll(ctx context.Context, h *hubProc, c *counter) error {
	cursor := "0"
	for ctx.Err() == nil {
		select {
		case <-c.done:
			return nil
		default:
		}
		code, b, err := partnerCall(h, http.MethodGet, "/v1/subscriptions/bench-pull/events?max=1000&wait=5&after="+cursor, nil)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("%d %.300s %v", code, b, err)
		}
		var p struct {
			Events json.RawMessage `json:"events"`
			Cursor string          `json:"cursor"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return err
		}
		if err := c.add(p.Events); err != nil {
			return err
		}
		cursor = p.Cursor
	}
	return nil
}

func partnerCall(h *hubProc, method, path string, body []byte) (int, []byte, error) {
	req, _ := http.NewRequest(method, h.base+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+partnerToken)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
