// Package audit is the hub's record of what its administrators did, of the
// grants partner agencies hold, and of every exchange of events with them:
// an append-only, hash-chained log in the JetStream stream IOC_AUDIT. Each
// record carries its place in the chain and the hash of the one before, so
// a record changed, removed or inserted anywhere is found by Verify
// (`iochub audit verify`). The stream refuses deletes and purges; the chain
// catches what someone with the server's files could still do.
package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The audit stream and its one subject.
const (
	Stream  = "IOC_AUDIT"
	Subject = "audit.admin"
)

// ErrBroken is what Verify wraps when the chain does not hold.
var ErrBroken = errors.New("audit log: chain broken")

// Entry is what an administrator did.
type Entry struct {
	Actor  string `json:"actor"`            // the admin token's name, or cli:<os user>@<host>
	Role   string `json:"role"`             // viewer, operator
	Via    string `json:"via"`              // http, cli
	Action string `json:"action"`           // e.g. dlq.replay, dlq.purge
	Target string `json:"target,omitempty"` // e.g. the dead letter's sequence, "all"
	// Outcome is empty when the record is written before the action, the
	// error of an action that failed after it.
	Outcome string `json:"outcome,omitempty"`
	// Events are the events of an exchange with a partner agency (actions
	// exchange.sent, exchange.confirmed and exchange.dead_lettered (not
	// delivered within the give-up time); Actor the agency, Target the
	// subscription): each one's identity and the SHA-256 of the payload as
	// it was delivered.
	Events []Exchanged `json:"events,omitempty"`
	// Detail is what an action set, as JSON: an agency's grants for
	// grants.set.
	Detail json.RawMessage `json:"detail,omitempty"`
}

// Exchanged is one event delivered to a partner agency.
type Exchanged struct {
	Source string `json:"source"`
	ID     string `json:"id"`
	SHA256 string `json:"sha256"` // hex, of the CloudEvent JSON as sent
}

// Record is an Entry in its place in the chain.
type Record struct {
	N    uint64    `json:"n"` // 1 for the first record, one more for each after it
	Time time.Time `json:"time"`
	Entry
	Prev string `json:"prev"` // Hash of record N-1; "" for the first
	Hash string `json:"hash"` // SHA-256 (hex) of this record encoded with Hash ""
}

// Sum is the hash r must carry: SHA-256 (hex) of its JSON with Hash empty.
func (r Record) Sum() string {
	r.Hash = ""
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Declare creates the audit stream: kept forever, no delete, no purge.
func Declare(ctx context.Context, js jetstream.JetStream) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: Stream, Subjects: []string{Subject},
		Description: "iochub: what administrators did, agencies' grants and every exchange with them, hash-chained (iochub audit verify)",
		Storage:     jetstream.FileStorage, Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardNew,
		DenyDelete: true, DenyPurge: true, MaxMsgSize: 64 << 10})
	if err != nil {
		return fmt.Errorf("stream %s: %w", Stream, err)
	}
	return nil
}

// Log appends to and reads the audit stream.
type Log struct {
	JS  jetstream.JetStream
	Now func() time.Time // time.Now when nil
	// Tail, when set, remembers the last record this process appended, so
	// that the next append need not read it back; shared by every copy of
	// the Log. The stream's expected last sequence still decides: when
	// another writer appended in between, the append reads the new last
	// record and chains to it.
	Tail *Tail
}

// Tail is the last record a process appended (its number and hash), and
// orders the process's appends.
type Tail struct {
	mu    sync.Mutex
	known bool
	last  Record // N and Hash only
}

// Append records e at the end of the chain. Writers race safely: each
// append expects the stream's last sequence it chained to, and a writer
// that lost the race chains again to the new last record.
func (l Log) Append(ctx context.Context, e Entry) (Record, error) {
	if t := l.Tail; t != nil {
		t.mu.Lock()
		defer t.mu.Unlock()
	}
	for attempt := 0; ; attempt++ {
		var last Record
		var err error
		if t := l.Tail; t != nil && t.known && attempt == 0 {
			last = t.last
		} else if last, err = l.last(ctx); err != nil {
			return Record{}, err
		}
		r, err := l.appendAfter(ctx, last, e)
		if errors.Is(err, errRaced) && attempt < 50 {
			continue // another writer appended first
		}
		if t := l.Tail; t != nil {
			t.known = err == nil
			t.last = Record{N: r.N, Hash: r.Hash}
		}
		return r, err
	}
}

var errRaced = errors.New("audit log: another writer appended first")

// appendAfter appends e chained to last, or errRaced if last is no longer
// the last record.
func (l Log) appendAfter(ctx context.Context, last Record, e Entry) (Record, error) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	r := Record{N: last.N + 1, Time: now().UTC().Truncate(time.Millisecond), Entry: e, Prev: last.Hash}
	r.Hash = r.Sum()
	body, err := json.Marshal(r)
	if err != nil {
		return Record{}, err
	}
	_, err = l.JS.Publish(ctx, Subject, body, jetstream.WithExpectLastSequence(last.N))
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
		return r, nil
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant): // one server; a replicated stream
		return Record{}, errRaced
	}
	return Record{}, fmt.Errorf("audit log: %w", err)
}

// last is the newest record, or the zero Record of an empty log.
func (l Log) last(ctx context.Context) (Record, error) {
	s, err := l.JS.Stream(ctx, Stream)
	if err != nil {
		return Record{}, fmt.Errorf("audit log: %w", err)
	}
	m, err := s.GetLastMsgForSubject(ctx, Subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Record{}, nil
	}
	if err != nil {
		return Record{}, fmt.Errorf("audit log: %w", err)
	}
	var r Record
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return Record{}, fmt.Errorf("%w: the last record (stream sequence %d) is not a record: %v", ErrBroken, m.Sequence, err)
	}
	if r.N != m.Sequence {
		return Record{}, fmt.Errorf("%w: the last record says it is number %d, the stream holds it at %d", ErrBroken, r.N, m.Sequence)
	}
	return r, nil
}

// Records calls fn with every record's JSON in stream order.
func (l Log) Records(ctx context.Context, fn func(seq uint64, raw []byte) error) error {
	s, err := l.JS.Stream(ctx, Stream)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // a gap: Verify finds the numbers do not follow
		}
		if err != nil {
			return fmt.Errorf("audit log: record %d: %w", seq, err)
		}
		if err := fn(seq, m.Data); err != nil {
			return err
		}
	}
	return nil
}

// Verifier checks records one after the other.
type Verifier struct {
	// PublicKey, when set, is the hub's root key: every signed root must be
	// signed by it. Unset, each root is checked against the key it names.
	PublicKey ed25519.PublicKey
	Roots     int // signed roots checked
	n         uint64
	prev      string
}

// Next checks the next record's JSON: its number follows, it chains to the
// one before, and its hash is its own.
func (v *Verifier) Next(raw []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("%w after record %d: not a record: %v", ErrBroken, v.n, err)
	}
	switch {
	case r.N != v.n+1:
		return r, fmt.Errorf("%w: record %d follows record %d (removed or inserted records)", ErrBroken, r.N, v.n)
	case r.Prev != v.prev:
		return r, fmt.Errorf("%w: record %d does not chain to record %d (its prev is not that record's hash)", ErrBroken, r.N, v.n)
	case r.Sum() != r.Hash:
		return r, fmt.Errorf("%w: record %d was changed after it was written (its hash does not match its content)", ErrBroken, r.N)
	}
	// A record decoded and encoded again must be what was written: a field
	// the record type does not know would otherwise pass unseen.
	canon, _ := json.Marshal(r)
	if string(canon) != string(trimNewline(raw)) {
		return r, fmt.Errorf("%w: record %d holds more than a record", ErrBroken, r.N)
	}
	if r.Action == ActionRoot {
		if err := checkRoot(r, v.n, v.prev, v.PublicKey); err != nil {
			return r, err
		}
		v.Roots++
	}
	v.n, v.prev = r.N, r.Hash
	return r, nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// Verify checks the whole log in the stream and returns how many records
// hold.
func (l Log) Verify(ctx context.Context) (uint64, error) {
	var v Verifier
	err := l.Records(ctx, func(_ uint64, raw []byte) error {
		_, err := v.Next(raw)
		return err
	})
	return v.n, err
}

// Export writes every record as a line of JSON: a copy to keep elsewhere,
// verifiable with VerifyLines.
func (l Log) Export(ctx context.Context, w io.Writer) error {
	return l.Records(ctx, func(_ uint64, raw []byte) error {
		_, err := w.Write(append(append([]byte(nil), raw...), '\n'))
		return err
	})
}

// VerifyLines checks an exported log, one record per line.
func VerifyLines(lines [][]byte) (uint64, error) {
	var v Verifier
	return v.Lines(lines)
}

// Lines checks an exported log, one record per line, and returns how many
// records hold.
func (v *Verifier) Lines(lines [][]byte) (uint64, error) {
	for _, line := range lines {
		if len(trimNewline(line)) == 0 {
			continue
		}
		if _, err := v.Next(line); err != nil {
			return v.n, err
		}
	}
	return v.n, nil
}
