package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// ActionRoot is the action of a signed root record: the hub's Ed25519
// signature over the chain's head at the moment it was written (the record
// before it: its number and hash), written once a day.
const ActionRoot = "root"

// Root is a root record's Detail.
type Root struct {
	Day       string `json:"day"`        // the UTC day it was written, YYYY-MM-DD
	N         uint64 `json:"n"`          // the record it signs: the one before the root
	Hash      string `json:"hash"`       // that record's hash
	PublicKey string `json:"public_key"` // base64 of the hub's Ed25519 public key
	Signature string `json:"signature"`  // base64 of the signature of SignedText
}

// SignedText is what a root's signature covers.
func (r Root) SignedText() []byte {
	return []byte("iochub-audit-root-v1\n" + r.Day + "\n" + strconv.FormatUint(r.N, 10) + "\n" + r.Hash)
}

// ErrBadRoot is what Verify wraps for a root whose signature does not hold,
// or that was signed by another key than the one asked for.
var ErrBadRoot = errors.New("audit log: bad signed root")

// AppendRoot signs the chain's head with key and appends the root record.
// Writers racing are safe: the root signs the record it follows, and
// chains again if another writer appended first.
func (l Log) AppendRoot(ctx context.Context, key ed25519.PrivateKey, day string) (Record, error) {
	for attempt := 0; ; attempt++ {
		head, err := l.last(ctx)
		if err != nil {
			return Record{}, err
		}
		root := Root{Day: day, N: head.N, Hash: head.Hash, PublicKey: base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))}
		root.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, root.SignedText()))
		detail, _ := json.Marshal(root)
		r, err := l.appendAfter(ctx, head, Entry{Actor: "hub", Role: "hub", Via: "hub", Action: ActionRoot, Target: day, Detail: detail})
		if errors.Is(err, errRaced) && attempt < 50 {
			continue
		}
		return r, err
	}
}

// checkRoot verifies r, a root record, against the record before it and,
// when pinned is set, the hub's public key.
func checkRoot(r Record, prevN uint64, prevHash string, pinned ed25519.PublicKey) error {
	var root Root
	if err := json.Unmarshal(r.Detail, &root); err != nil {
		return fmt.Errorf("%w: record %d: %v", ErrBadRoot, r.N, err)
	}
	pub, err := base64.StdEncoding.DecodeString(root.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: record %d: the public key is not an Ed25519 key", ErrBadRoot, r.N)
	}
	sig, err := base64.StdEncoding.DecodeString(root.Signature)
	switch {
	case root.N != prevN || root.Hash != prevHash:
		return fmt.Errorf("%w: record %d signs record %d (%.12s…), not the record before it", ErrBadRoot, r.N, root.N, root.Hash)
	case err != nil || !ed25519.Verify(pub, root.SignedText(), sig):
		return fmt.Errorf("%w: record %d: the signature does not hold", ErrBadRoot, r.N)
	case pinned != nil && !pinned.Equal(ed25519.PublicKey(pub)):
		return fmt.Errorf("%w: record %d is signed by key %s, not the hub's %s", ErrBadRoot, r.N, root.PublicKey, base64.StdEncoding.EncodeToString(pinned))
	}
	return nil
}
