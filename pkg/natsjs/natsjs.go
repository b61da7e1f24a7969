// Package natsjs is iochub's JetStream layer: the two streams and the
// aggregator's consumer, declared at start; publishing with deduplication on
// the event identity; the embedded server of the all-in-one binary; and the
// header names every service agrees on.
package natsjs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/iochub/iochub/pkg/audit"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// EventsStream holds every accepted event, on ioc.<sector>.<name>.v<major>.
	EventsStream = "IOC_EVENTS"
	// DLQStream holds dead letters, on dlq.<sector>.<name>.v<major>.
	DLQStream = "IOC_DLQ"
	// EventsSubjects is the subject filter of EventsStream.
	EventsSubjects = "ioc.*.*.*"
	// DLQSubjects is the subject filter of DLQStream; it does not overlap EventsSubjects.
	DLQSubjects = "dlq.>"
	// DLQUnknownSubject takes dead letters whose subject names no event type.
	DLQUnknownSubject = "dlq.unknown"
	// AggregatorConsumer is the durable consumer the aggregator reads with.
	AggregatorConsumer = "aggregator"
	// SubscriptionConsumerPrefix starts the name of each partner agency's
	// subscription's durable consumer (services/sharing).
	SubscriptionConsumerPrefix = "sub-"
	// AlertsStream holds the monitor's alert changes, on
	// ops.alerts.<alert name>: the history survives a restart and the
	// alert webhook is sent from it (AlertWebhookConsumer).
	AlertsStream = "IOC_ALERTS"
	// AlertsSubjects is the subject filter of AlertsStream.
	AlertsSubjects = "ops.alerts.>"
	// AlertWebhookConsumer is the durable consumer that sends each alert
	// change to the configured webhook, in order, until it is taken.
	AlertWebhookConsumer = "alert-webhook"
)

// Headers set on messages (JetStream's own Nats-Msg-Id is
// jetstream.MsgIDHeader).
const (
	// HeaderPseudonymized marks events whose personal data the gateway has
	// already pseudonymized (and whose data it validated). Only services may
	// publish on ioc.> with it: restrict that subject with NATS permissions.
	HeaderPseudonymized = "Iochub-Pseudonymized"
	// HeaderAdmitSeal proves HeaderPseudonymized: an HMAC of the subject and
	// the body under a key only the hub holds (admit.Admitter.Sealed). An
	// event whose seal does not verify is admitted again, whatever its
	// headers say.
	HeaderAdmitSeal = "Iochub-Admit-Seal"
	// HeaderProducer names who sent an event: the gateway's producer, or
	// connector:<name>. An identity (source, id) sent again by someone
	// else is a conflict, not a retry.
	HeaderProducer = "Iochub-Producer"
	// HeaderDLQReason says why an event was dead-lettered.
	HeaderDLQReason = "Iochub-Dlq-Reason"
	// HeaderDLQSubject is the subject the event was first published on.
	HeaderDLQSubject = "Iochub-Dlq-Original-Subject"
	// HeaderDLQSequence is its sequence in EventsStream.
	HeaderDLQSequence = "Iochub-Dlq-Original-Sequence"
	// HeaderDLQStage names who dead-lettered it (aggregator, ...).
	HeaderDLQStage = "Iochub-Dlq-Stage"
	// HeaderDLQTime is when it was dead-lettered (RFC 3339).
	HeaderDLQTime = "Iochub-Dlq-Time"
)

// StreamLimits sizes the streams. When a stream is full it rejects new
// publishes (discard new): an event is refused with a clear answer, never
// dropped after being accepted.
type StreamLimits struct {
	EventsMaxBytes int64         // IOC_EVENTS size; default 10 GiB
	EventsMaxAge   time.Duration // how long IOC_EVENTS keeps an event (the retained log); default 7 days
	DLQMaxBytes    int64         // IOC_DLQ size; default 1 GiB
	DLQMaxAge      time.Duration // how long IOC_DLQ keeps a dead letter; default 30 days
	MaxMsgSize     int32         // largest event; default 1 MiB
	// DedupWindow is how long JetStream itself remembers a (source, id) and
	// answers a resend as a duplicate at publish time; default 2 minutes. It
	// costs the server memory (about 180 bytes an id, see
	// docs/decisions/0005-permanent-identity.md); the aggregator's identity
	// check keeps an event once in ClickHouse however late it is resent.
	DedupWindow time.Duration
	Replicas    int // 1 on one machine, 3 on a cluster
	// AckWait is how long JetStream waits for the aggregator's ack before
	// redelivering; default 60s. The aggregator sends InProgress while it
	// retries, so this bounds only how soon a dead aggregator's events return.
	AckWait time.Duration
}

func (l StreamLimits) withDefaults() StreamLimits {
	if l.EventsMaxBytes == 0 {
		l.EventsMaxBytes = 10 << 30
	}
	if l.EventsMaxAge == 0 {
		l.EventsMaxAge = DefaultEventsMaxAge
	}
	if l.DLQMaxBytes == 0 {
		l.DLQMaxBytes = 1 << 30
	}
	if l.DLQMaxAge == 0 {
		l.DLQMaxAge = 30 * 24 * time.Hour
	}
	if l.MaxMsgSize == 0 {
		l.MaxMsgSize = 1 << 20
	}
	if l.DedupWindow == 0 {
		l.DedupWindow = DefaultDedupWindow
	}
	l.DedupWindow = min(l.DedupWindow, l.EventsMaxAge)
	if l.Replicas == 0 {
		l.Replicas = 1
	}
	if l.AckWait == 0 {
		l.AckWait = DefaultAckWait
	}
	return l
}

// Defaults of StreamLimits.
const (
	DefaultAckWait      = 60 * time.Second   // the aggregator consumer's ack wait
	DefaultEventsMaxAge = 7 * 24 * time.Hour // retention of IOC_EVENTS
	DefaultDedupWindow  = 2 * time.Minute    // JetStream's duplicate window
)

// ErrConfig is matched by limits that cannot be declared.
var ErrConfig = errors.New("stream limits")

// Validate names what is wrong with the limits, before any stream is touched.
func (l StreamLimits) Validate() error {
	var errs []error
	if l.EventsMaxAge < 0 || (l.EventsMaxAge > 0 && l.EventsMaxAge < time.Second) {
		errs = append(errs, fmt.Errorf("%w: events max age %s must be at least 1s", ErrConfig, l.EventsMaxAge))
	}
	if l.DedupWindow < 0 || (l.DedupWindow > 0 && l.DedupWindow < 100*time.Millisecond) {
		errs = append(errs, fmt.Errorf("%w: dedup window %s must be at least 100ms", ErrConfig, l.DedupWindow))
	}
	if l.Replicas != 0 && l.Replicas != 1 && l.Replicas != 3 && l.Replicas != 5 {
		errs = append(errs, fmt.Errorf("%w: --stream-replicas %d: want 1, 3 or 5", ErrConfig, l.Replicas))
	}
	if age := l.withDefaults().EventsMaxAge; l.DedupWindow > age {
		errs = append(errs, fmt.Errorf("%w: dedup window %s is longer than the events' max age %s", ErrConfig, l.DedupWindow, age))
	}
	return errors.Join(errs...)
}

// EventsStreamConfig is IOC_EVENTS: a retained log. Every accepted event
// stays for EventsMaxAge (or until EventsMaxBytes, when new events are
// refused, never old ones dropped); acks do not delete, so the aggregator,
// partner subscriptions and replays are durable consumers side by side, and
// JetStream's duplicate table, rebuilt at start from the stored messages,
// survives a restart.
func EventsStreamConfig(l StreamLimits) jetstream.StreamConfig {
	l = l.withDefaults()
	return jetstream.StreamConfig{
		Name:        EventsStream,
		Description: "iochub: every accepted event, kept for the retention age (a replayable log)",
		Subjects:    []string{EventsSubjects},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxAge:      l.EventsMaxAge,
		MaxBytes:    l.EventsMaxBytes,
		MaxMsgs:     -1,
		MaxMsgSize:  l.MaxMsgSize + 64<<10, // room for headers
		Storage:     jetstream.FileStorage,
		Replicas:    l.Replicas,
		Duplicates:  l.DedupWindow,
	}
}

// Declare creates or updates both streams and the aggregator's durable
// consumer. An IOC_EVENTS of an earlier version (a work queue, which cannot
// be switched in place) is upgraded first: see upgradeWorkQueue.
func Declare(ctx context.Context, js jetstream.JetStream, l StreamLimits) error {
	if err := l.Validate(); err != nil {
		return err
	}
	l = l.withDefaults()
	events := EventsStreamConfig(l)
	if err := upgradeWorkQueue(ctx, js, events); err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateStream(ctx, events); err != nil {
		return fmt.Errorf("declare stream %s: %w", EventsStream, err)
	}
	dlq := jetstream.StreamConfig{
		Name:        DLQStream,
		Description: "iochub: events that failed validation or storage, with the reason in headers",
		Subjects:    []string{DLQSubjects},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxAge:      l.DLQMaxAge,
		MaxBytes:    l.DLQMaxBytes,
		MaxMsgs:     -1,
		MaxMsgSize:  l.MaxMsgSize + 128<<10,
		Storage:     jetstream.FileStorage,
		Replicas:    l.Replicas,
		Duplicates:  l.DedupWindow,
	}
	if _, err := js.CreateOrUpdateStream(ctx, dlq); err != nil {
		return fmt.Errorf("declare stream %s: %w", DLQStream, err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, EventsStream, AggregatorConsumerConfig(l.AckWait)); err != nil {
		return fmt.Errorf("declare consumer %s: %w", AggregatorConsumer, err)
	}
	if err := audit.Declare(ctx, js); err != nil {
		return err
	}
	alerts := jetstream.StreamConfig{
		Name:        AlertsStream,
		Description: "iochub: the monitor's alert changes (fired, resolved), the history its page and /v1/ops/alerts show",
		Subjects:    []string{AlertsSubjects},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      90 * 24 * time.Hour,
		MaxMsgs:     100_000,
		MaxMsgSize:  64 << 10,
		Storage:     jetstream.FileStorage,
		Replicas:    l.Replicas,
	}
	if _, err := js.CreateOrUpdateStream(ctx, alerts); err != nil {
		return fmt.Errorf("declare stream %s: %w", AlertsStream, err)
	}
	// Before anything publishes: which events were stored before the hub
	// sealed its marks (recorded once, at the first start that seals).
	if _, err := UnsealedUntil(ctx, js); err != nil {
		return err
	}
	return nil
}

// AggregatorConsumerConfig is the aggregator's durable pull consumer.
func AggregatorConsumerConfig(ackWait time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       AggregatorConsumer,
		Description:   "iochub aggregator: raw tables in ClickHouse",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: 100_000,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// ErrStreamFull is matched when JetStream refused a publish because a stream
// reached its limits: the caller should answer 503 and retry later.
var ErrStreamFull = errors.New("stream full")

// ErrUnavailable is matched when JetStream did not answer a publish.
var ErrUnavailable = errors.New("jetstream unavailable")

// ClassifyPublishError maps a publish error onto ErrStreamFull or
// ErrUnavailable where it is one of those.
func ClassifyPublishError(err error) error {
	if err == nil {
		return nil
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch server.ErrorIdentifier(apiErr.ErrorCode) {
		case server.JSStreamStoreFailedF, // maximum bytes or messages exceeded
			server.JSMemoryResourcesExceededErr, server.JSInsufficientResourcesErr:
			return fmt.Errorf("%w: %w", ErrStreamFull, err)
		}
		if apiErr.Code == http.StatusServiceUnavailable {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, jetstream.ErrTooManyStalledMsgs) || isConnErr(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// CaughtUp reports whether the aggregator's consumer has settled every event
// of IOC_EVENTS (none pending, none awaiting its ack). On the retained log
// this, not an empty stream, means "everything is stored".
func CaughtUp(ctx context.Context, js jetstream.JetStream) (bool, error) {
	c, err := js.Consumer(ctx, EventsStream, AggregatorConsumer)
	if err != nil {
		return false, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return false, err
	}
	return info.NumPending == 0 && info.NumAckPending == 0, nil
}
