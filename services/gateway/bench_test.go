package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/gateway"
)

// BenchmarkGatewayBatch: a batch of 100 valid visits through the handler
// (JetStream left out: a publisher that takes everything), and a batch of
// 3 invalid ones, refused: the gateway's own cost per request, counting
// and logging included.
func BenchmarkGatewayBatch(b *testing.B) {
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		b.Fatal(err)
	}
	cfg := gateway.Config{Producers: []gateway.Producer{{Name: "all", TokenSHA256: httpedge.HashToken(tokenAll), Scope: event.Scope{Sources: []string{"*"}, Types: []string{"vn.ioc.*"}}}}}
	cfg.Defaults()
	p, _ := pii.New([]byte(piiKey))
	h := gateway.New(cfg, reg, acceptAll{}, p, zap.NewNop())
	valid, err := os.ReadFile("../../schemas/health/examples/visit.v1.valid.json")
	if err != nil {
		b.Fatal(err)
	}
	var one []map[string]any
	if err := json.Unmarshal(valid, &one); err != nil {
		b.Fatal(err)
	}
	batch := make([]map[string]any, 100)
	for i := range batch {
		e := map[string]any{}
		for k, v := range one[0] {
			e[k] = v
		}
		e["id"] = fmt.Sprintf("bench-%d", i)
		batch[i] = e
	}
	body, _ := json.Marshal(batch)
	invalid, err := os.ReadFile("../../schemas/health/examples/visit.v1.invalid.json")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		body   []byte
		status int
	}{{"valid-100", body, 202}, {"invalid-3", invalid, 400}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(c.body))
				req.Header.Set("Authorization", "Bearer "+tokenAll)
				req.Header.Set("Content-Type", gateway.MediaBatch)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != c.status {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
