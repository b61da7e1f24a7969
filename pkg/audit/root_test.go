package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/iochub/iochub/pkg/audit"
)

func key(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// A signed root holds the chain's head under the hub's key: it verifies,
// and a root whose signature was altered, that signs another record, or
// that another key signed (a log rebuilt by someone without the hub's key)
// is found.
func TestSignedRootsHoldTheChain(t *testing.T) {
	l, _ := newLog(t)
	ctx := context.Background()
	hub := key(1)
	for i := range 3 {
		if _, err := l.Append(ctx, audit.Entry{Actor: "so-y-te", Role: "agency", Via: "http", Action: "exchange.sent", Target: "s",
			Events: []audit.Exchanged{{Source: "/a", ID: strings.Repeat("x", i+1), SHA256: strings.Repeat("0", 64)}}}); err != nil {
			t.Fatal(err)
		}
	}
	root, err := l.AppendRoot(ctx, hub, "2026-12-02")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, audit.Entry{Actor: "a", Role: "operator", Via: "http", Action: "dlq.purge", Target: "1"}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := l.Export(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	pinned := hub.Public().(ed25519.PublicKey)
	v := audit.Verifier{PublicKey: pinned}
	if n, err := v.Lines(lines); err != nil || n != 5 || v.Roots != 1 {
		t.Fatalf("the log with its root: %d records, %d roots, %v", n, v.Roots, err)
	}

	// A root rewritten, its record's hash made again so the chain holds.
	rewrite := func(f func(*audit.Root, *audit.Record)) [][]byte {
		var r audit.Record
		_ = json.Unmarshal(lines[root.N-1], &r)
		var rt audit.Root
		_ = json.Unmarshal(r.Detail, &rt)
		f(&rt, &r)
		r.Detail, _ = json.Marshal(rt)
		r.Hash = r.Sum()
		out := append([][]byte{}, lines...)
		out[root.N-1], _ = json.Marshal(r)
		// The next record chains to the rewritten one, its hash made again too.
		var next audit.Record
		_ = json.Unmarshal(lines[root.N], &next)
		next.Prev = r.Hash
		next.Hash = next.Sum()
		out[root.N], _ = json.Marshal(next)
		return out
	}
	other := key(2)
	for _, tt := range []struct {
		name   string
		lines  [][]byte
		pinned ed25519.PublicKey
		want   string
	}{
		{"signature altered", rewrite(func(rt *audit.Root, _ *audit.Record) {
			rt.Signature = base64.StdEncoding.EncodeToString(make([]byte, 64))
		}), nil, "signature does not hold"},
		{"signs another record", rewrite(func(rt *audit.Root, _ *audit.Record) { rt.N = 1 }), nil, "not the record before it"},
		{"signed by another key", rewrite(func(rt *audit.Root, _ *audit.Record) {
			rt.PublicKey = base64.StdEncoding.EncodeToString(other.Public().(ed25519.PublicKey))
			rt.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(other, rt.SignedText()))
		}), pinned, "not the hub's"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := audit.Verifier{PublicKey: tt.pinned}
			_, err := v.Lines(tt.lines)
			if !errors.Is(err, audit.ErrBadRoot) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrBadRoot saying %q", err, tt.want)
			}
		})
	}
}
