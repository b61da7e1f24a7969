package feedback_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/iochub/iochub/internal/polltest"
	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/connector/connectortest"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/connectors/feedback"
	"github.com/iochub/iochub/sim/simtest"
)

var secret = []byte("portal-webhook-secret")

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMapPortalBodies(t *testing.T) {
	reg, _ := schema.Load(schemas.FS)
	ty, _ := reg.Lookup("vn.ioc.feedback.report.v1")
	for _, c := range []struct {
		file string
		want map[string]any
		err  []string
	}{
		{"resolved.json", map[string]any{"report_id": "PA-2026-000123", "status": "resolved", "channel": "zalo", "satisfaction": 4.0,
			"status_time": "2026-11-23T08:30:00Z", "submitted_at": "2026-11-22T01:05:00Z", "resolved_at": "2026-11-23T08:30:00Z",
			"agency_code": "UBND-27256", "reporter_phone": "0912345678"}, nil},
		{"submitted.json", map[string]any{"status": "submitted", "channel": "hotline", "area_code": "27261"}, nil},
		{"bad-state.json", nil, []string{`trang_thai "dong"`, `kenh "thu"`, `thoi_diem "hôm qua"`}},
	} {
		t.Run(c.file, func(t *testing.T) {
			e, err := feedback.Map(connector.Record{Data: fixture(t, c.file)})
			if c.err != nil {
				for _, w := range c.err {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("error %v does not name %s", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			data, _ := schema.DecodeData(e.Data)
			if err := ty.Validate(data); err != nil {
				t.Fatalf("mapped event is not valid: %v", err)
			}
			for k, v := range c.want {
				if got := data.(map[string]any)[k]; fmt.Sprint(got) != fmt.Sprint(v) {
					t.Errorf("%s = %v, want %v", k, got, v)
				}
			}
		})
	}
}

func post(t *testing.T, url string, body []byte, sign func(http.Header)) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if sign != nil {
		sign(req.Header)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestBadSignatureGets401AndPublishesNothing runs the webhook under a real
// runner and JetStream: unsigned and wrongly signed bodies get 401 and
// leave both streams empty; the same body signed right gets 202 and is
// stored.
func TestBadSignatureGets401AndPublishesNothing(t *testing.T) {
	srv := natsjstest.Run(t)
	_, js := srv.Declared(t, natsjs.StreamLimits{})
	reg, _ := schema.Load(schemas.FS)
	ps, _ := pii.New([]byte("connector-test-key-0123456789abcdef"))
	w := feedback.NewWebhook(secret)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &connector.Runner{Name: "feedback-portal", Source: w, Map: feedback.Map, Registry: reg, Pseudo: ps, JS: js, Log: zaptest.NewLogger(t)}
	go func() { _ = r.Run(ctx) }()
	hs := httptest.NewServer(w)
	defer hs.Close()
	body := fixture(t, "resolved.json")
	count := func(stream string) uint64 {
		s, _ := js.Stream(context.Background(), stream)
		info, _ := s.Info(context.Background())
		return info.State.Msgs
	}
	now := time.Now()
	signed := func(secret, body []byte, at time.Time) func(http.Header) {
		return func(h http.Header) { connector.SignRequest(h, secret, "msg_feedback_1", at, body) }
	}
	for name, sign := range map[string]func(http.Header){
		"missing":      nil,
		"wrong secret": signed([]byte("another-secret"), body, now),
		"not base64":   func(h http.Header) { signed(secret, body, now)(h); h.Set(connector.HeaderWebhookSignature, "v1,zz") },
		"other body":   signed(secret, append([]byte(" "), body...), now),
		"without version": func(h http.Header) {
			signed(secret, body, now)(h)
			h.Set(connector.HeaderWebhookSignature, strings.TrimPrefix(h.Get(connector.HeaderWebhookSignature), "v1,"))
		},
		"an hour old": signed(secret, body, now.Add(-time.Hour)),
	} {
		if status := post(t, hs.URL, body, sign); status != http.StatusUnauthorized {
			t.Errorf("%s signature: %d, want 401", name, status)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n, d := count(natsjs.EventsStream), count(natsjs.DLQStream); n != 0 || d != 0 {
		t.Fatalf("after bad signatures: %d events, %d dead letters; want none", n, d)
	}
	status := 0
	polltest.Until(t, "the signed body accepted", 10*time.Second, func() error {
		if status = post(t, hs.URL, body, signed(secret, body, time.Now())); status != http.StatusAccepted {
			return fmt.Errorf("status %d", status) // the runner may not have connected yet: 503
		}
		return nil
	})
	if status != http.StatusAccepted || count(natsjs.EventsStream) != 1 {
		t.Fatalf("signed body: %d, %d events", status, count(natsjs.EventsStream))
	}
	s, _ := js.Stream(context.Background(), natsjs.EventsStream)
	m, _ := s.GetMsg(context.Background(), 1)
	if bytes.Contains(m.Data, []byte("0912345678")) || bytes.Contains(m.Data, []byte("Nguyễn Thị Hoa")) {
		t.Error("the reporter's phone or name reached NATS in clear")
	}
}

func TestConformance(t *testing.T) {
	connectortest.Run(t, "feedback-portal", func(t *testing.T) connectortest.System {
		return simtest.StartWebhookSystem(t, &simtest.WebhookSystem{Secret: secret, Mapper: feedback.Map,
			NewWebhook: func() *connector.Webhook { return feedback.NewWebhook(secret) },
			Body: func(n int) []byte {
				b, _ := json.Marshal(map[string]any{"ma_phan_anh": fmt.Sprintf("PA-%06d", n), "linh_vuc": "moi_truong", "ma_dia_ban": "27256",
					"kenh": "app", "trang_thai": "tiep_nhan", "thoi_diem": "2026-11-23T07:00:00+07:00", "thoi_diem_gui": "2026-11-23T07:00:00+07:00"})
				return b
			},
			Malformed: []byte(`{"ma_phan_anh": "PA-BAD", "trang_thai": "dong", "ho_ten": "Nguyễn Thị Hoa", "so_dien_thoai": "0912345678"}`),
			Personal:  []string{"Nguyễn Thị Hoa", "0912345678", `"dong"`}})
	})
}
