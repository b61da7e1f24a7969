// Package pii pseudonymizes or drops the personal-data fields that a schema
// marks with "x-pii", so that names, phone numbers and ID numbers never reach
// NATS or ClickHouse in clear.
package pii

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"sync"

	"github.com/iochub/iochub/pkg/schema"
)

// Prefix starts every pseudonymized value, so a reader can tell it from
// clear text; the key's id follows it: hmac-sha256:<key id>:<hex>.
const Prefix = "hmac-sha256:"

// MinKeyLen is the shortest key accepted, in bytes (a random 32-byte key:
// anything shorter can be guessed, and a known key reverses a phone number's
// pseudonym in minutes).
const MinKeyLen = 32

// DefaultKeyID names the key when the configuration does not.
const DefaultKeyID = "k1"

// ErrBadKeyID is returned for a key id that is not 1-16 of a-z 0-9 - _.
var ErrBadKeyID = errors.New("pseudonymization key id must be 1-16 of a-z 0-9 - _")

var keyIDPattern = regexp.MustCompile(`^[a-z0-9_-]{1,16}$`)

// ErrWeakKey is returned by New for a key shorter than MinKeyLen.
var ErrWeakKey = errors.New("pseudonymization key too short")

// Pseudonymizer applies a keyed HMAC-SHA256 to personal-data fields. The same
// value under the same key always gives the same pseudonym, so a KPI can count
// distinct people without knowing who they are. Safe for concurrent use.
type Pseudonymizer struct {
	pool   sync.Pool
	id     string
	prefix string // Prefix + id + ":"
}

// New returns a Pseudonymizer for key (at least MinKeyLen bytes), named
// DefaultKeyID.
func New(key []byte) (*Pseudonymizer, error) { return NewWithID(key, DefaultKeyID) }

// NewWithID returns a Pseudonymizer for key whose pseudonyms carry id, so
// that after a rotation a reader knows which key made a value.
func NewWithID(key []byte, id string) (*Pseudonymizer, error) {
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrWeakKey, len(key), MinKeyLen)
	}
	if err := CheckKeyID(id); err != nil {
		return nil, err
	}
	k := append([]byte(nil), key...)
	return &Pseudonymizer{pool: sync.Pool{New: func() any { return hmac.New(sha256.New, k) }}, id: id, prefix: Prefix + id + ":"}, nil
}

// CheckKeyID says whether id may name a key.
func CheckKeyID(id string) error {
	if !keyIDPattern.MatchString(id) {
		return fmt.Errorf("%w, got %q", ErrBadKeyID, id)
	}
	return nil
}

// KeyID is the id the pseudonyms carry.
func (p *Pseudonymizer) KeyID() string { return p.id }

// Derive is a key for another use (label names it), derived from the
// pseudonymization key: HMAC-SHA256(key, label). It is not a pseudonym.
func (p *Pseudonymizer) Derive(label string) []byte {
	h := p.pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte("iochub-derive\x00" + label))
	sum := h.Sum(nil)
	p.pool.Put(h)
	return sum
}

// Hash returns the pseudonym of v.
func (p *Pseudonymizer) Hash(v string) string {
	h := p.pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(v))
	sum := h.Sum(nil)
	p.pool.Put(h)
	return p.prefix + hex.EncodeToString(sum)
}

// Apply rewrites data (decoded JSON) in place: fields marked pseudonymize are
// replaced by their hash (non-string values are hashed from their JSON text),
// fields marked drop are removed. It reports whether it changed anything.
func (p *Pseudonymizer) Apply(t *schema.Type, data any) bool {
	changed := false
	fields(t, data, func(f schema.Field, obj map[string]any, leaf string) {
		switch f.Action {
		case schema.PIIDrop:
			delete(obj, leaf)
		case schema.PIIPseudonymize:
			if obj[leaf] == nil {
				return
			}
			obj[leaf] = p.Hash(fmt.Sprint(obj[leaf]))
		}
		changed = true
	})
	return changed
}

// Drop removes every personal-data field of data (decoded JSON, in place),
// pseudonymized or not: for a receiver granted none of it. It reports
// whether it changed anything.
func Drop(t *schema.Type, data any) bool {
	changed := false
	fields(t, data, func(_ schema.Field, obj map[string]any, leaf string) {
		delete(obj, leaf)
		changed = true
	})
	return changed
}

// fields calls fn with each personal-data field of t present in data: the
// object holding it and its name there.
func fields(t *schema.Type, data any, fn func(f schema.Field, obj map[string]any, leaf string)) {
	for _, f := range t.PII {
		obj, ok := data.(map[string]any)
		for _, k := range f.Path[:len(f.Path)-1] {
			if !ok {
				break
			}
			obj, ok = obj[k].(map[string]any)
		}
		if !ok {
			continue
		}
		leaf := f.Path[len(f.Path)-1]
		if _, present := obj[leaf]; present {
			fn(f, obj, leaf)
		}
	}
}
