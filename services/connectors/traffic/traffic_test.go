package traffic_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/connector/connectortest"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/connectors/traffic"
	"github.com/iochub/iochub/sim/simtest"
)

func mapFixture(t *testing.T, file, typ string, m connector.Mapper) map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	e, err := m(connector.Record{Data: b})
	if err != nil {
		t.Fatal(err)
	}
	reg, _ := schema.Load(schemas.FS)
	ty, _ := reg.Lookup(typ)
	data, _ := schema.DecodeData(e.Data)
	if err := ty.Validate(data); err != nil {
		t.Fatalf("%s maps to an invalid event: %v", file, err)
	}
	return data.(map[string]any)
}

func TestMapFixtures(t *testing.T) {
	for _, c := range []struct {
		file, typ string
		m         connector.Mapper
		want      map[string]any
	}{
		{"flow.json", "vn.ioc.traffic.flow.v1", traffic.MapFlow, map[string]any{"sensor_id": "LOOP-003", "segment_id": "QL1A-03",
			"area_code": "27259", "window_start": "2026-11-23T00:45:00Z", "motorbikes": 812, "cars": 140, "trucks": 22, "buses": 6,
			"bicycles": 15, "mean_speed_kmh": 38.5, "occupancy_pct": 41.2}},
		{"incident.json", "vn.ioc.traffic.incident.v1", traffic.MapIncident, map[string]any{"incident_id": "SC-2026-11-23-0042",
			"kind": "accident", "severity": "serious", "status": "responding", "occurred_at": "2026-11-23T00:32:00Z",
			"status_time": "2026-11-23T00:50:00Z", "injured": 2, "killed": 0, "segment_id": "QL1A-01", "reporter_phone": "0911222333"}},
	} {
		got := mapFixture(t, c.file, c.typ, c.m)
		for k, v := range c.want {
			if fmt.Sprint(got[k]) != fmt.Sprint(v) {
				t.Errorf("%s: %s = %v, want %v", c.file, k, got[k], v)
			}
		}
	}
	for body, want := range map[string]string{
		`{"sensor": "L", "segment": "S", "area": "27256", "start": "hôm nay", "seconds": 0, "counts": {"car": 1}}`: `start "hôm nay"`,
		`{"ma_su_co": "SC-1", "loai": "chay_no", "muc_do": "nhe", "trang_thai": "tiep_nhan", "ma_dia_ban": "27256",
		  "thoi_diem_xay_ra": "2026-11-23T07:32:00+07:00", "thoi_diem": "2026-11-23T07:50:00+07:00"}`: `loai "chay_no"`,
	} {
		m := traffic.MapFlow
		if strings.Contains(body, "ma_su_co") {
			m = traffic.MapIncident
		}
		if _, err := m(connector.Record{Data: []byte(body)}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one naming %s", body, err, want)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// broker is the NATS server with its MQTT listener that the sensors publish
// to; down, it is shut down (its store stays).
type broker struct {
	mu       sync.Mutex
	dir      string
	port     int
	mqttPort int
	srv      *natsjs.Embedded
	n        int
	operator nkeys.KeyPair // the connector's identity
}

// Each sensor's MQTT user: it may publish its own subjects only.
const sensorUser, sensorPassword = "loop-007", "sensor-password-of-the-test"

var sensorHash = func() string {
	h, err := bcrypt.GenerateFromPassword([]byte(sensorPassword), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
}()

func (b *broker) operatorOptions() []nats.Option {
	pub, _ := b.operator.PublicKey()
	return []nats.Option{nats.Nkey(pub, b.operator.Sign)}
}

func (b *broker) start(t *testing.T) {
	t.Helper()
	if b.operator == nil {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		b.operator = kp
	}
	pub, _ := b.operator.PublicKey()
	srv, err := natsjs.RunEmbedded(natsjs.EmbeddedConfig{Listen: fmt.Sprintf("127.0.0.1:%d", b.port), StoreDir: b.dir,
		MQTTListen: fmt.Sprintf("127.0.0.1:%d", b.mqttPort), Access: natsjs.Access{Users: []natsjs.User{
			{Name: "connector", Role: natsjs.RoleOperator, NKey: pub},
			{Name: sensorUser, Role: natsjs.RoleSensor, PasswordBcrypt: sensorHash, Subjects: []string{"traffic.sensors.LOOP-007.>"}},
		}}})
	if err != nil {
		t.Fatalf("start the MQTT broker: %v", err)
	}
	b.srv = srv
	nc, err := nats.Connect(srv.ClientURL(), b.operatorOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := traffic.DeclareSensorStream(context.Background(), js); err != nil {
		t.Fatal(err)
	}
}

func (b *broker) Source(*testing.T) connector.Source {
	return &traffic.SensorSource{NATSURL: fmt.Sprintf("nats://127.0.0.1:%d", b.port), Options: b.operatorOptions()}
}
func (b *broker) Map() connector.Mapper { return traffic.MapFlow }

func (b *broker) publish(t *testing.T, topic string, payloads ...[]byte) {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", b.mqttPort)).SetClientID(fmt.Sprintf("sensor-%d", time.Now().UnixNano())).
		SetUsername(sensorUser).SetPassword(sensorPassword).
		SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	for _, p := range payloads {
		if tok := c.Publish(topic, 1, false, p); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("mqtt publish: %v", tok.Error())
		}
	}
}

func (b *broker) Add(t *testing.T, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ps [][]byte
	for range n {
		b.n++
		start := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC).Add(time.Duration(b.n) * 5 * time.Minute)
		p, _ := json.Marshal(map[string]any{"sensor": "LOOP-007", "segment": "QL1A-07", "area": "27262", "start": start.Format(time.RFC3339),
			"seconds": 300, "counts": map[string]int{"motorbike": 400 + b.n, "car": 80, "truck": 10, "bus": 3}, "speed_kmh": 42.0})
		ps = append(ps, p)
	}
	b.publish(t, "traffic/sensors/LOOP-007/counts", ps...)
}
func (b *broker) AddMalformed(t *testing.T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.publish(t, "traffic/sensors/LOOP-007/counts", []byte(`{"sensor": "LOOP-007", "counts": "nhiều"}`))
}
func (b *broker) SetAvailable(t *testing.T, up bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if up {
		b.start(t)
		return
	}
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}

// TestSensorConformance: sensors publish over MQTT (QoS 1) to the NATS
// server's MQTT listener; the connector takes them from IOC_SENSORS.
func TestSensorConformance(t *testing.T) {
	connectortest.Run(t, "traffic-sensors", func(t *testing.T) connectortest.System {
		b := &broker{dir: filepath.Join(t.TempDir(), "broker"), port: freePort(t), mqttPort: freePort(t)}
		b.start(t)
		t.Cleanup(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if b.srv != nil {
				b.srv.Shutdown()
			}
		})
		return b
	})
}

var incidentSecret = []byte("incident-centre-secret")

func TestIncidentConformance(t *testing.T) {
	connectortest.Run(t, "traffic-incidents", func(t *testing.T) connectortest.System {
		return simtest.StartWebhookSystem(t, &simtest.WebhookSystem{Secret: incidentSecret, Mapper: traffic.MapIncident,
			NewWebhook: func() *connector.Webhook { return traffic.NewIncidentWebhook(incidentSecret) },
			Body: func(n int) []byte {
				b, _ := json.Marshal(map[string]any{"ma_su_co": fmt.Sprintf("SC-%05d", n), "loai": "un_tac", "muc_do": "nhe", "trang_thai": "tiep_nhan",
					"ma_dia_ban": "27260", "thoi_diem_xay_ra": "2026-11-23T17:10:00+07:00", "thoi_diem": "2026-11-23T17:12:00+07:00"})
				return b
			},
			Malformed: []byte(`{"ma_su_co": "SC-BAD", "loai": "?"}`)})
	})
}
