// Package traffic brings in the traffic sensors and the incident centre.
//
// Sensors publish their counts over MQTT to the NATS server's MQTT
// listener (`iochub run --mqtt-listen`), topic traffic/sensors/<sensor>/counts,
// which NATS carries as subject traffic.sensors.<sensor>.counts. The
// stream SensorStream keeps those messages until the connector has turned
// them into traffic.flow events, so a connector that is down loses
// nothing. The payload:
//
//	{"sensor": "LOOP-001", "segment": "QL1A-01", "area": "27256",
//	 "start": "2026-11-23T08:00:00+07:00", "seconds": 300,
//	 "counts": {"motorbike": 812, "car": 140, "truck": 22, "bus": 6, "bicycle": 15},
//	 "speed_kmh": 38.5, "occupancy": 41.2}
//
// Incidents arrive as signed webhooks (connector.Webhook) from the traffic
// incident centre and become traffic.incident events (see MapIncident).
package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
		nc, err := nats.Connect(s.NATSURL, nats.Name("iochub traffic connector"), nats.Timeout(3*time.Second))
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
	return event.Event{Source: "/traffic/sensors/" + in.Sensor, Type: "vn.ioc.traffic.flow.v1", Subject: in.Segment,
		Time: start.Add(time.Duration(in.Seconds) * time.Second).UTC(), Data: b}, nil
}

// NewIncidentWebhook is the incident centre's webhook under secret.
func NewIncidentWebhook(secret []byte) *connector.Webhook {
	return &connector.Webhook{Secret: secret, Identify: func(body []byte) (string, string) {
		var h struct {
			ID, State, At string
		}
		var raw map[string]any
		_ = json.Unmarshal(body, &raw)
		h.ID, _ = raw["ma_su_co"].(string)
		h.State, _ = raw["trang_thai"].(string)
		h.At, _ = raw["thoi_diem"].(string)
		return h.ID, h.State + "@" + h.At
	}}
}

// Incident vocabularies of the incident centre, mapped to the schema's.
var (
	IncidentKinds    = map[string]string{"tai_nan": "accident", "un_tac": "congestion", "vi_pham": "violation", "hu_hong_duong": "road_damage"}
	IncidentSeverity = map[string]string{"nhe": "minor", "trung_binh": "moderate", "nghiem_trong": "serious", "rat_nghiem_trong": "critical"}
	IncidentStates   = map[string]string{"tiep_nhan": "reported", "dang_xu_ly": "responding", "da_giai_quyet": "cleared"}
)

// MapIncident turns the incident centre's body into a traffic.incident event:
//
//	{"ma_su_co": "SC-…", "loai": "tai_nan", "muc_do": "nghiem_trong", "trang_thai": "dang_xu_ly",
//	 "ma_dia_ban": "27256", "doan_duong": "QL1A-01", "thoi_diem_xay_ra": "…", "thoi_diem": "…",
//	 "so_nguoi_bi_thuong": 2, "so_nguoi_tu_vong": 0, "vi_tri": {"lat": …, "lon": …},
//	 "nguoi_bao": {"so_dien_thoai": "…"}}
func MapIncident(r connector.Record) (event.Event, error) {
	var in struct {
		ID       string `json:"ma_su_co"`
		Kind     string `json:"loai"`
		Severity string `json:"muc_do"`
		State    string `json:"trang_thai"`
		Area     string `json:"ma_dia_ban"`
		Segment  string `json:"doan_duong"`
		Occurred string `json:"thoi_diem_xay_ra"`
		At       string `json:"thoi_diem"`
		Injured  *int   `json:"so_nguoi_bi_thuong"`
		Killed   *int   `json:"so_nguoi_tu_vong"`
		Where    *struct {
			Lat float64 `json:"lat"`
			Lon float64 `json:"lon"`
		} `json:"vi_tri"`
		Reporter *struct {
			Phone string `json:"so_dien_thoai"`
		} `json:"nguoi_bao"`
	}
	if err := json.Unmarshal(r.Data, &in); err != nil {
		return event.Event{}, fmt.Errorf("body is not the incident centre's JSON: %w", err)
	}
	var errs []error
	look := func(name, v string, m map[string]string) string {
		out, ok := m[v]
		if !ok {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			errs = append(errs, fmt.Errorf("%s %q: want one of %s", name, v, strings.Join(keys, ", ")))
		}
		return out
	}
	kind, sev, state := look("loai", in.Kind, IncidentKinds), look("muc_do", in.Severity, IncidentSeverity), look("trang_thai", in.State, IncidentStates)
	if in.ID == "" || in.Area == "" {
		errs = append(errs, errors.New("ma_su_co and ma_dia_ban are required"))
	}
	occ, err := time.Parse(time.RFC3339, in.Occurred)
	if err != nil {
		errs = append(errs, fmt.Errorf("thoi_diem_xay_ra %q is not an RFC 3339 time", in.Occurred))
	}
	at, err := time.Parse(time.RFC3339, in.At)
	if err != nil {
		errs = append(errs, fmt.Errorf("thoi_diem %q is not an RFC 3339 time", in.At))
	}
	if err := errors.Join(errs...); err != nil {
		return event.Event{}, err
	}
	data := map[string]any{"incident_id": in.ID, "kind": kind, "severity": sev, "status": state, "area_code": in.Area,
		"occurred_at": occ.UTC().Format(time.RFC3339), "status_time": at.UTC().Format(time.RFC3339)}
	if in.Segment != "" {
		data["segment_id"] = in.Segment
	}
	if in.Injured != nil {
		data["injured"] = *in.Injured
	}
	if in.Killed != nil {
		data["killed"] = *in.Killed
	}
	if in.Where != nil {
		data["location"] = map[string]any{"lat": in.Where.Lat, "lon": in.Where.Lon}
	}
	if in.Reporter != nil && in.Reporter.Phone != "" {
		data["reporter_phone"] = in.Reporter.Phone
	}
	b, _ := json.Marshal(data)
	return event.Event{Source: "/traffic/incidents", Type: "vn.ioc.traffic.incident.v1", Subject: in.Area, Time: at.UTC(), Data: b}, nil
}
