package pii_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
)

func TestApply(t *testing.T) {
	r, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	ty, _ := r.Lookup("vn.ioc.feedback.report.v1")
	p, err := pii.New([]byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := schema.DecodeData([]byte(`{"report_id":"r1","reporter_name":"Trần Thị Bình","reporter_phone":"0912345678"}`))
	if !p.Apply(ty, data) {
		t.Fatal("Apply changed nothing")
	}
	m := data.(map[string]any)
	if _, ok := m["reporter_name"]; ok {
		t.Error("reporter_name kept")
	}
	phone := m["reporter_phone"].(string)
	if !strings.HasPrefix(phone, pii.Prefix) || strings.Contains(phone, "0912345678") {
		t.Errorf("reporter_phone = %q", phone)
	}
	if phone != p.Hash("0912345678") {
		t.Error("pseudonym is not stable")
	}
	other, _ := pii.New([]byte("another key, 16+ bytes"))
	if other.Hash("0912345678") == phone {
		t.Error("pseudonym does not depend on the key")
	}
	if p.Apply(ty, map[string]any{"report_id": "r2"}) {
		t.Error("Apply reported a change on data without personal fields")
	}
	if _, err := pii.New([]byte("short")); !errors.Is(err, pii.ErrWeakKey) {
		t.Errorf("short key: err = %v", err)
	}
}
