// Package connector brings sector systems that will never push CloudEvents
// into the hub: a Source reads records from the system (polling an API,
// reading exports, taking webhooks), a Mapper turns each into an event, and
// the Runner does the rest — backoff, validation, pseudonymization,
// publishing with an event id derived from the record and its version (so
// re-reading a record never makes a second event), checkpoints in
// JetStream's key-value store, and dead letters for records that cannot be
// mapped or validated, with the raw record and the reason.
package connector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/iochub/iochub/pkg/event"
)

// ErrUnavailable is matched by Source errors that mean the system cannot be
// reached now: the Runner closes the source, backs off and connects again.
var ErrUnavailable = errors.New("source unavailable")

// Record is one item read from a source system.
type Record struct {
	// Key is the record's identity in the source system (a dossier id, a
	// file and line, a message id) and Version its version (an update time,
	// an etag, a hash of the content). The same key and version always make
	// the same event id.
	Key, Version string
	// Cursor is where the source resumes after this record once it is
	// handled: the Runner stores it as the checkpoint and gives it back to
	// Connect after a restart. A push source (a webhook, whose sender
	// resends what was not acked) leaves it empty; the checkpoint then names
	// the last record handled.
	Cursor string
	// Data is the record as read, kept in the dead letter when it cannot
	// be mapped or validated.
	Data []byte
	// Ref lets the source find its own state for the record in Ack.
	Ref any
	// Refused, when set, says why the source would not read the record (a
	// symbolic link, a file too large): the Runner dead-letters it with this
	// reason, unmapped, and Data holds nothing of it.
	Refused string
}

// Source reads records from one sector system.
type Source interface {
	// Connect opens the source to read the records after checkpoint ("" for
	// the beginning).
	Connect(ctx context.Context, checkpoint string) error
	// Read returns the next record, waiting for one until ctx is done.
	Read(ctx context.Context) (Record, error)
	// Ack tells the source the record is published (or dead-lettered) and
	// checkpointed: a push source answers its sender, a file source may
	// move a finished file away.
	Ack(ctx context.Context, r Record) error
	// Close releases what Connect opened.
	Close() error
}

// Mapper turns a record into an event: type, source, time, subject and data.
// The Runner sets the id. An error means the record is malformed: it is
// dead-lettered with the error as the reason.
type Mapper func(Record) (event.Event, error)

// EventID is the id of the event made from a record of connector name: a
// hash of its key and version.
func EventID(name string, r Record) string {
	sum := sha256.Sum256([]byte(r.Key + "\x00" + r.Version))
	return name + "-" + hex.EncodeToString(sum[:16])
}
