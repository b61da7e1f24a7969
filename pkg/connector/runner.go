package connector

import (
	"context"

	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/admit"
	"github.com/iochub/iochub/pkg/backoff"
	"github.com/iochub/iochub/pkg/dlq"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
)

// CheckpointBucket is the JetStream key-value bucket of the connectors'
// checkpoints, one key per connector.
const CheckpointBucket = "IOC_CONNECTORS"

// HeaderRecordKey names the record of a connector's dead letter.
const HeaderRecordKey = dlq.HeaderRecordKey

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// Runner moves one source's records into IOC_EVENTS.
type Runner struct {
	Name     string // the connector: checkpoint key, event id prefix, dead-letter subject
	Source   Source
	Map      Mapper
	Registry *schema.Registry
	Pseudo   *pii.Pseudonymizer
	JS       jetstream.JetStream
	Log      *zap.Logger
	// MinBackoff and MaxBackoff bound the wait after a failure (defaults
	// 200 ms and 30 s); it doubles on each failure in a row.
	MinBackoff, MaxBackoff time.Duration

	adm *admit.Admitter // built from Registry and Pseudo at the first record
	// cipher encrypts dead-lettered records, from Pseudo at the first one.
	cipher *dlq.RecordCipher
}

// Checkpoints opens (creating it if needed) the checkpoint bucket.
func Checkpoints(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: CheckpointBucket,
		Description: "iochub: where each connector resumes", History: 5, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, fmt.Errorf("checkpoint bucket %s: %w", CheckpointBucket, err)
	}
	return kv, nil
}

// Run reads, maps, validates and publishes until ctx is done. It returns
// only for a configuration error or when ctx is done (nil).
func (r *Runner) Run(ctx context.Context) error {
	if !nameRE.MatchString(r.Name) {
		return fmt.Errorf("connector name %q: use lower-case letters, digits, - and _", r.Name)
	}
	if r.MinBackoff == 0 {
		r.MinBackoff = 200 * time.Millisecond
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = 30 * time.Second
	}
	log := r.Log.With(zap.String("connector", r.Name))
	b := backoff.Backoff{Min: r.MinBackoff, Max: r.MaxBackoff}
	var kv jetstream.KeyValue
	for kv == nil {
		var err error
		if kv, err = Checkpoints(ctx, r.JS); err != nil {
			log.Warn("checkpoints unavailable; retrying", zap.Error(err))
			if !b.Wait(ctx) {
				return nil
			}
		}
	}
	connected := false
	defer func() {
		if connected {
			_ = r.Source.Close()
		}
	}()
	for ctx.Err() == nil {
		if !connected {
			cp, err := r.checkpoint(ctx, kv)
			if err == nil {
				err = r.Source.Connect(ctx, cp)
			}
			if err != nil {
				log.Warn("source not connected; backing off", zap.Error(err), zap.Duration("wait", b.Current()))
				if !b.Wait(ctx) {
					return nil
				}
				continue
			}
			connected = true
			log.Info("source connected", zap.String("checkpoint", cp))
		}
		rec, err := r.Source.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("source read failed; reconnecting after a backoff", zap.Error(err), zap.Duration("wait", b.Current()))
			_ = r.Source.Close()
			connected = false
			if !b.Wait(ctx) {
				return nil
			}
			continue
		}
		if err := r.handle(ctx, kv, rec, &b, log); err != nil {
			return nil // ctx done while retrying
		}
		b.Reset()
	}
	return nil
}

func (r *Runner) checkpoint(ctx context.Context, kv jetstream.KeyValue) (string, error) {
	e, err := kv.Get(ctx, r.Name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	return string(e.Value()), nil
}

// handle publishes or dead-letters rec, stores its cursor and acks it,
// retrying JetStream until it answers. It fails only when ctx is done.
func (r *Runner) handle(ctx context.Context, kv jetstream.KeyValue, rec Record, b *backoff.Backoff, log *zap.Logger) error {
	msg := r.message(rec)
	for {
		_, err := r.JS.PublishMsg(ctx, msg)
		if err == nil || isDuplicate(err) {
			break
		}
		log.Warn("publish failed; retrying", zap.String("record", rec.Key), zap.Error(err))
		if !b.Wait(ctx) {
			return ctx.Err()
		}
	}
	cp := rec.Cursor
	if cp == "" { // a push source resumes nowhere; the checkpoint names the last record handled
		cp = "last:" + msg.Header.Get(jetstream.MsgIDHeader)
	}
	for {
		_, err := kv.PutString(ctx, r.Name, cp)
		if err == nil {
			break
		}
		log.Warn("checkpoint failed; retrying", zap.Error(err))
		if !b.Wait(ctx) {
			return ctx.Err()
		}
	}
	if err := r.Source.Ack(ctx, rec); err != nil {
		log.Warn("source ack failed", zap.String("record", rec.Key), zap.Error(err))
	}
	return nil
}

// isDuplicate reports a publish JetStream refused because the same message
// id is being stored at that moment (a resend racing its first send): the
// event is stored either way. A resend of a stored id is not an error (its
// PubAck says Duplicate).
func isDuplicate(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && server.ErrorIdentifier(apiErr.ErrorCode) == server.JSStreamDuplicateMessageConflict
}

// message is the event message for rec, admitted (pkg/admit), or its dead letter.
func (r *Runner) message(rec Record) *nats.Msg {
	id := EventID(r.Name, rec)
	if rec.Refused != "" {
		rec.Data = nil
		return r.deadLetter(rec, id, "source: "+rec.Refused)
	}
	e, err := r.Map(rec)
	if err != nil {
		return r.deadLetter(rec, id, "mapping: "+err.Error())
	}
	e.ID = id
	if e.SpecVersion == "" {
		e.SpecVersion = "1.0"
	}
	e.DataContentType = event.ContentTypeJSON
	if r.adm == nil {
		r.adm = admit.New(r.Registry, r.Pseudo, 0)
	}
	ad, err := r.adm.Clear(e)
	if err != nil {
		stage, msg := "validation: ", err.Error()
		if errors.Is(err, schema.ErrUnknownType) {
			stage = "mapping: "
		}
		var ve *schema.ValidationError
		if errors.As(err, &ve) {
			msg = ve.Redacted()
		}
		return r.deadLetter(rec, id, stage+msg)
	}
	m, err := r.adm.Msg(ad)
	if err != nil {
		return r.deadLetter(rec, id, "mapping: "+err.Error())
	}
	m.Header.Set(natsjs.HeaderProducer, "connector:"+r.Name)
	return m
}

func (r *Runner) deadLetter(rec Record, id, reason string) *nats.Msg {
	if r.cipher == nil && r.Pseudo != nil {
		r.cipher, _ = dlq.NewRecordCipher(r.Pseudo) // a 32-byte derived key: AES-256 takes it
	}
	data := rec.Data
	if len(data) > MaxDeadRecordBytes {
		reason = fmt.Sprintf("%s (record of %d bytes, its first %d kept)", reason, len(data), MaxDeadRecordBytes)
		data = data[:MaxDeadRecordBytes]
	}
	return dlq.ForRecord(r.Name, rec.Key, id, data, reason, time.Now(), r.cipher)
}

// MaxDeadRecordBytes is how much of a record its dead letter keeps: a record
// larger than the dead-letter stream takes is kept truncated, never left to
// stall its connector.
const MaxDeadRecordBytes = 256 << 10
