package connector_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/iochub/iochub/pkg/connector"
)

// TestPagerStaysOnTheConfiguredOrigin (finding M6): a next-page link to
// another host, scheme or port is not fetched (the poller's token would go
// with it); a link on the same origin is.
func TestPagerStaysOnTheConfiguredOrigin(t *testing.T) {
	for _, tt := range []struct {
		next    string
		follows bool
	}{
		{"https://dvc.bacninh.gov.vn/api/v1/ho-so?sau=2", true},
		{"https://evil.example/api/v1/ho-so?sau=2", false},
		{"http://dvc.bacninh.gov.vn/api/v1/ho-so?sau=2", false},
		{"https://dvc.bacninh.gov.vn:8443/api/v1/ho-so?sau=2", false},
	} {
		var fetched []string
		p := connector.Pager{
			FirstURL: func() string { return "https://dvc.bacninh.gov.vn/api/v1/ho-so?sau=1" },
			Fetch: func(_ context.Context, u string) ([]connector.Record, string, error) {
				fetched = append(fetched, u)
				if strings.HasSuffix(u, "sau=1") {
					return []connector.Record{{Key: "1"}}, tt.next, nil
				}
				return []connector.Record{{Key: "2"}}, "", nil
			},
		}
		if _, err := p.Next(context.Background()); err != nil {
			t.Fatal(err)
		}
		_, err := p.Next(context.Background())
		switch {
		case tt.follows && (err != nil || len(fetched) != 2 || fetched[1] != tt.next):
			t.Errorf("%s: not followed: %v %v", tt.next, err, fetched)
		case !tt.follows && (!errors.Is(err, connector.ErrUnavailable) || len(fetched) != 1):
			t.Errorf("%s: followed or not refused: %v %v", tt.next, err, fetched)
		}
	}
}
