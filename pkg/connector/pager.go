package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Pager is the reading loop of a source that polls a paged HTTP API: it
// hands out the records of a page one at a time, follows the next-page
// links, and once caught up waits Interval before asking again from the
// cursor.
type Pager struct {
	Interval time.Duration // default 30 s
	// FirstURL is the first page's URL after the current cursor.
	FirstURL func() string
	// Fetch reads one page: its records and the next page's URL ("" none).
	Fetch func(ctx context.Context, url string) ([]Record, string, error)

	buf  []Record
	next string
}

// Next returns the next record, polling when caught up.
func (p *Pager) Next(ctx context.Context) (Record, error) {
	for len(p.buf) == 0 {
		u := p.next
		if u == "" {
			u = p.FirstURL()
		} else if err := sameOrigin(p.FirstURL(), u); err != nil {
			p.next = "" // start again from the cursor, never from that link
			return Record{}, err
		}
		recs, next, err := p.Fetch(ctx, u)
		if err != nil {
			return Record{}, err
		}
		p.buf, p.next = recs, next
		if len(recs) == 0 && next == "" {
			wait := p.Interval
			if wait <= 0 {
				wait = 30 * time.Second
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return Record{}, ctx.Err()
			case <-t.C:
			}
		}
	}
	r := p.buf[0]
	p.buf = p.buf[1:]
	return r, nil
}

// sameOrigin refuses a next-page link to another scheme, host or port than
// the configured API's: the poller's bearer token goes wherever it follows.
func sameOrigin(base, link string) error {
	b, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("%w: the configured URL %q: %v", ErrUnavailable, base, err)
	}
	l, err := url.Parse(link)
	if err != nil || l.Scheme != b.Scheme || l.Host != b.Host {
		return fmt.Errorf("%w: the next-page link %q leaves %s://%s: not followed", ErrUnavailable, link, b.Scheme, b.Host)
	}
	return nil
}

// MaxPageBytes bounds one page of a polled API.
const MaxPageBytes = 32 << 20

// Reset drops what was read and not handed out (on Close or Connect).
func (p *Pager) Reset() { p.buf, p.next = nil, "" }

// GetJSON GETs url and decodes its JSON body into v. Every failure wraps
// ErrUnavailable and names the system (what) and, for an answer that is not
// 200, the status and URL.
func GetJSON(ctx context.Context, c *http.Client, url, token, accept, what string, v any) error {
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
	}
	req.Header.Set("Accept", accept)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s answered %s to %s", ErrUnavailable, what, res.Status, url)
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, MaxPageBytes)).Decode(v); err != nil {
		return fmt.Errorf("%w: %s: the answer is not the expected JSON: %v", ErrUnavailable, what, err)
	}
	return nil
}
