package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/iochub/iochub/pkg/audit"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
)

func newLog(t *testing.T) (audit.Log, jetstream.JetStream) {
	t.Helper()
	_, js := natsjstest.Run(t).Connect(t)
	if err := audit.Declare(context.Background(), js); err != nil {
		t.Fatal(err)
	}
	return audit.Log{JS: js}, js
}

// TestWritersRacingMakeOneChain: writers appending at once still make one
// chain, numbered without a gap: two sharing a Log, two processes' Logs
// each remembering its own tail, and one that reads the tail every time.
func TestWritersRacingMakeOneChain(t *testing.T) {
	l, _ := newLog(t)
	ctx := context.Background()
	shared := l
	shared.Tail = &audit.Tail{}
	other := l
	other.Tail = &audit.Tail{}
	var wg sync.WaitGroup
	for w, l := range []audit.Log{shared, shared, other, l} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				if _, err := l.Append(ctx, audit.Entry{Actor: fmt.Sprintf("admin-%d", w), Role: "operator", Via: "http", Action: "dlq.replay", Target: fmt.Sprint(i)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	n, err := l.Verify(ctx)
	if err != nil || n != 40 {
		t.Fatalf("Verify = %d, %v; want 40 records in one chain", n, err)
	}
}

// TestVerifyFindsEveryTampering: a record changed in the middle of the
// log, changed with its hash made again, removed, or the stream's own
// record deleted: each is found and named.
func TestVerifyFindsEveryTampering(t *testing.T) {
	l, js := newLog(t)
	ctx := context.Background()
	for i := range 5 {
		e := audit.Entry{Actor: "trung-tam", Role: "operator", Via: "http", Action: "dlq.purge", Target: fmt.Sprint(10 + i)}
		if i == 3 { // an exchange with a partner agency, in the same chain
			e = audit.Entry{Actor: "so-y-te", Role: "agency", Via: "http", Action: "exchange.sent", Target: "yte-incidents",
				Events: []audit.Exchanged{{Source: "/traffic/csgt", ID: "TN-1", SHA256: strings.Repeat("ab", 32)}}}
		}
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := l.Export(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if n, err := audit.VerifyLines(lines); err != nil || n != 5 {
		t.Fatalf("the exported log: %d, %v", n, err)
	}
	edit := func(i int, f func(string) string) [][]byte {
		out := make([][]byte, len(lines))
		copy(out, lines)
		out[i] = []byte(f(string(lines[i])))
		return out
	}
	tests := []struct {
		name  string
		lines [][]byte
		want  string
	}{
		{"a record changed", edit(2, func(s string) string { return strings.Replace(s, `"actor":"trung-tam"`, `"actor":"someone-else"`, 1) }), "record 3 was changed"},
		{"a record removed", append(append([][]byte{}, lines[:2]...), lines[3:]...), "record 4 follows record 2"},
		{"an exchanged payload's hash changed", edit(3, func(s string) string { return strings.Replace(s, `"sha256":"abab`, `"sha256":"cdab`, 1) }), "record 4 was changed"},
		{"an exchange removed", append(append([][]byte{}, lines[:3]...), lines[4:]...), "record 5 follows record 3"},
		{"an exchange moved", [][]byte{lines[0], lines[1], lines[3], lines[2], lines[4]}, "record 4 follows record 2"},
		{"a field added", edit(2, func(s string) string { return strings.Replace(s, `{"n":3,`, `{"n":3,"note":"x",`, 1) }), "record 3 holds more"},
		{"records swapped", [][]byte{lines[0], lines[2], lines[1], lines[3], lines[4]}, "record 3 follows record 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := audit.VerifyLines(tt.lines)
			if !errors.Is(err, audit.ErrBroken) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("VerifyLines = %v, want %q", err, tt.want)
			}
		})
	}
	// A forger who makes the changed record's hash again breaks the link
	// to the next one.
	var r audit.Record
	if err := json.Unmarshal(lines[2], &r); err != nil {
		t.Fatal(err)
	}
	r.Target = "99"
	r.Hash = r.Sum()
	forged, _ := json.Marshal(r)
	if _, err := audit.VerifyLines([][]byte{lines[0], lines[1], forged, lines[3], lines[4]}); err == nil || !strings.Contains(err.Error(), "record 4 does not chain to record 3") {
		t.Fatalf("a re-hashed change: %v", err)
	}
	// The stream refuses to delete a record; with the refusal lifted, the
	// gap is found.
	s, _ := js.Stream(ctx, audit.Stream)
	if err := s.DeleteMsg(ctx, 3); err == nil {
		t.Fatal("the audit stream let a record be deleted")
	}
	if err := s.Purge(ctx); err == nil {
		t.Fatal("the audit stream let itself be purged")
	}
	// Someone with every right rebuilds the stream without record 3.
	if err := js.DeleteStream(ctx, audit.Stream); err != nil {
		t.Fatal(err)
	}
	if err := audit.Declare(ctx, js); err != nil {
		t.Fatal(err)
	}
	for i, line := range lines {
		if i == 2 {
			continue
		}
		if _, err := js.Publish(ctx, audit.Subject, line); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Verify(ctx); err == nil || !strings.Contains(err.Error(), "record 4 follows record 2") {
		t.Fatalf("Verify after a deletion = %v", err)
	}
	if _, err := l.Append(ctx, audit.Entry{Actor: "x", Action: "dlq.purge"}); !errors.Is(err, audit.ErrBroken) {
		t.Fatalf("Append on a broken log = %v, want ErrBroken", err)
	}
}
