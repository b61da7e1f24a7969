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
	p, err := pii.New([]byte("0123456789abcdef0123456789abcdef"))
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
	other, _ := pii.New([]byte("another key of 32 bytes or more.."))
	if other.Hash("0912345678") == phone {
		t.Error("pseudonym does not depend on the key")
	}
	if p.Apply(ty, map[string]any{"report_id": "r2"}) {
		t.Error("Apply reported a change on data without personal fields")
	}
	if _, err := pii.New([]byte("short")); !errors.Is(err, pii.ErrWeakKey) {
		t.Errorf("short key: err = %v", err)
	}
	if _, err := pii.New([]byte("0123456789abcdef0123456789abcde")); !errors.Is(err, pii.ErrWeakKey) {
		t.Errorf("a 31-byte key: err = %v, want ErrWeakKey", err)
	}
}

// TestPseudonymsCarryTheKeyID (finding H7): a pseudonym says which key
// made it, so the key can be rotated and old values told from new ones.
func TestPseudonymsCarryTheKeyID(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	k1, _ := pii.New(key)
	k2, err := pii.NewWithID([]byte("a second key, 32 bytes or longer."), "k2")
	if err != nil {
		t.Fatal(err)
	}
	if h := k1.Hash("0912345678"); !strings.HasPrefix(h, "hmac-sha256:k1:") || len(h) != len("hmac-sha256:k1:")+64 {
		t.Errorf("default key's pseudonym %q", h)
	}
	if h := k2.Hash("0912345678"); !strings.HasPrefix(h, "hmac-sha256:k2:") {
		t.Errorf("k2's pseudonym %q", h)
	}
	for _, bad := range []string{"", "K1", "k:1", strings.Repeat("k", 17)} {
		if _, err := pii.NewWithID(key, bad); !errors.Is(err, pii.ErrBadKeyID) {
			t.Errorf("key id %q: err = %v", bad, err)
		}
	}
}
