package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/event"
)

// The sources of the events the traffic connectors make (a sensor id
// follows SensorSources); they are reserved for them (the gateway refuses
// them to producers).
const (
	SensorSources  = "/traffic/sensors/"
	IncidentSource = "/traffic/incidents"
)

// The sensors' stream and the connector's durable consumer on it.
const (
	SensorStream   = "IOC_SENSORS"
	SensorSubjects = "traffic.sensors.>"
	SensorConsumer = "traffic-connector"
)

// DeclareSensorStream creates SensorStream. The hub declares it at start,
// before any sensor publishes: a message sent while no stream captures its
// subject is gone.
func DeclareSensorStream(ctx context.Context, js jetstream.JetStream) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: SensorStream, Subjects: []string{SensorSubjects},
		Description: "iochub: traffic sensor messages (MQTT) until the traffic connector has taken them",
		Retention:   jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, MaxAge: 7 * 24 * time.Hour})
	if err != nil {
		return fmt.Errorf("stream %s: %w", SensorStream, err)
	}
	return nil
}

// SensorSource reads the sensors' messages from SensorStream.
type SensorSource struct {
	// NATSURL is the server the sensors' MQTT listener belongs to; empty
	// uses Conn.
	NATSURL string
	// Options add to the connection to NATSURL (its credentials).
	Options []nats.Option
	Conn    *nats.Conn

	nc      *nats.Conn
	own     bool
	cons    jetstream.Consumer
	pending jetstream.Msg // read and not yet acked: given back on Close
}

// Connect declares the stream and the durable consumer (which keeps the
// position itself; the checkpoint is informational).
func (s *SensorSource) Connect(ctx context.Context, _ string) error {
	s.nc, s.own = s.Conn, false
	if s.nc == nil {
		opts := append([]nats.Option{nats.Name("iochub traffic connector"), nats.Timeout(3 * time.Second)}, s.Options...)
		nc, err := nats.Connect(s.NATSURL, opts...)
		if err != nil {
			return fmt.Errorf("%w: nats %s: %v", connector.ErrUnavailable, s.NATSURL, err)
		}
		s.nc, s.own = nc, true
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return fmt.Errorf("%w: %v", connector.ErrUnavailable, err)
	}
	if err := DeclareSensorStream(ctx, js); err != nil {
		return fmt.Errorf("%w: %v", connector.ErrUnavailable, err)
	}
	s.cons, err = js.CreateOrUpdateConsumer(ctx, SensorStream, jetstream.ConsumerConfig{Durable: SensorConsumer,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxAckPending: 1000})
	if err != nil {
		return fmt.Errorf("%w: consumer %s: %v", connector.ErrUnavailable, SensorConsumer, err)
	}
	return nil
}

// Read waits for the next sensor message.
func (s *SensorSource) Read(ctx context.Context) (connector.Record, error) {
	for {
		if err := ctx.Err(); err != nil {
			return connector.Record{}, err
		}
		m, err := s.cons.Next(jetstream.FetchMaxWait(time.Second))
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages) {
			continue
		}
		if err != nil {
			return connector.Record{}, fmt.Errorf("%w: %v", connector.ErrUnavailable, err)
		}
		meta, _ := m.Metadata()
		seq := uint64(0)
		if meta != nil {
			seq = meta.Sequence.Stream
		}
		var head struct {
			Sensor string `json:"sensor"`
			Start  string `json:"start"`
		}
		_ = json.Unmarshal(m.Data(), &head)
		key := head.Sensor + "@" + head.Start
		if head.Sensor == "" || head.Start == "" {
			key = m.Subject() + "#" + strconv.FormatUint(seq, 10)
		}
		s.pending = m
		return connector.Record{Key: key, Version: "1", Cursor: strconv.FormatUint(seq, 10), Data: m.Data(), Ref: m}, nil
	}
}

// Ack acknowledges the message: the stream forgets it.
func (s *SensorSource) Ack(ctx context.Context, r connector.Record) error {
	if m, ok := r.Ref.(jetstream.Msg); ok {
		s.pending = nil
		return m.DoubleAck(ctx)
	}
	return nil
}

// Close gives back a message read and not acked (so it comes again at
// once, not after the ack wait) and closes the connection it opened.
func (s *SensorSource) Close() error {
	if s.pending != nil {
		_ = s.pending.Nak()
		s.pending = nil
	}
	if s.own && s.nc != nil {
		s.nc.Close()
	}
	s.nc, s.cons = nil, nil
	return nil
}

// MapFlow turns a sensor message into a traffic.flow event.
func MapFlow(r connector.Record) (event.Event, error) {
	var in struct {
		Sensor  string         `json:"sensor"`
		Segment string         `json:"segment"`
		Area    string         `json:"area"`
		Start   string         `json:"start"`
		Seconds int            `json:"seconds"`
		Counts  map[string]int `json:"counts"`
		Speed   *float64       `json:"speed_kmh"`
		Occ     *float64       `json:"occupancy"`
	}
	if err := json.Unmarshal(r.Data, &in); err != nil {
		return event.Event{}, fmt.Errorf("sensor message is not JSON: %w", err)
	}
	var errs []error
	for name, v := range map[string]string{"sensor": in.Sensor, "segment": in.Segment, "area": in.Area} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is missing", name))
		}
	}
	start, err := time.Parse(time.RFC3339, in.Start)
	if err != nil {
		errs = append(errs, fmt.Errorf("start %q is not an RFC 3339 time", in.Start))
	}
	if in.Seconds <= 0 {
		errs = append(errs, fmt.Errorf("seconds %d: want the window's length", in.Seconds))
	}
	for _, k := range []string{"motorbike", "car", "truck", "bus"} {
		if v, ok := in.Counts[k]; !ok || v < 0 {
			errs = append(errs, fmt.Errorf("counts.%s is missing or negative", k))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return event.Event{}, err
	}
	data := map[string]any{"sensor_id": in.Sensor, "segment_id": in.Segment, "area_code": in.Area, "window_start": start.UTC().Format(time.RFC3339),
		"window_seconds": in.Seconds, "motorbikes": in.Counts["motorbike"], "cars": in.Counts["car"], "trucks": in.Counts["truck"], "buses": in.Counts["bus"]}
	if v, ok := in.Counts["bicycle"]; ok {
		data["bicycles"] = v
	}
	if in.Speed != nil {
		data["mean_speed_kmh"] = *in.Speed
	}
	if in.Occ != nil {
		data["occupancy_pct"] = *in.Occ
	}
	b, _ := json.Marshal(data)
	return event.Event{Source: SensorSources + in.Sensor, Type: "vn.ioc.traffic.flow.v1", Subject: in.Segment,
		Time: start.Add(time.Duration(in.Seconds) * time.Second).UTC(), Data: b}, nil
}
