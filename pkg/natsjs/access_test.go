package natsjs_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
)

const sensorPassword = "a-sensor-password-for-the-test"

func bcryptOf(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lockedServer is an embedded server with a sensor user (MQTT, its own
// subjects), a producer (NATS, one type, one source) and the test's
// operator, the hub's streams declared and a stream taking the sensors'
// subjects.
type lockedServer struct {
	*natsjstest.Server
	js       jetstream.JetStream
	mqttAddr string
	producer nkeys.KeyPair
}

func startLocked(t *testing.T) *lockedServer {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	ls := &lockedServer{mqttAddr: freeAddr(t), producer: kp}
	ls.Server = natsjstest.RunWith(t, natsjs.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: t.TempDir(), MQTTListen: ls.mqttAddr,
		Access: natsjs.Access{SensorsMaxStore: 1 << 20, Users: []natsjs.User{
			{Name: "loops-bn", Role: natsjs.RoleSensor, PasswordBcrypt: bcryptOf(t, sensorPassword), Subjects: []string{"traffic.sensors.bn.>"}},
			{Name: "lab-his", Role: natsjs.RoleProducer, NKey: pub, Scope: scope([]string{"/health/lab"}, "vn.ioc.health.visit.v1")},
		}}})
	_, ls.js = ls.Declared(t, natsjs.StreamLimits{})
	ctx := context.Background()
	if _, err := ls.js.CreateStream(ctx, jetstream.StreamConfig{Name: "SENSORS_TEST", Subjects: []string{natsjs.SensorSubjects}}); err != nil {
		t.Fatal(err)
	}
	return ls
}

func (ls *lockedServer) count(t *testing.T, stream string) uint64 {
	t.Helper()
	s, err := ls.js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// mqttConnect connects a sensor; user "" is anonymous.
func mqttConnect(addr, user, password string) (mqtt.Client, error) {
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("t-%d", time.Now().UnixNano())).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetConnectRetry(false)
	if user != "" {
		opts.SetUsername(user).SetPassword(password)
	}
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("mqtt connect: no answer")
	}
	return c, tok.Error()
}

// sensorPublish publishes one QoS 1 message on a fresh connection (a
// refused publish may close it).
func sensorPublish(t *testing.T, addr, topic string, retained bool, payload []byte) {
	t.Helper()
	c, err := mqttConnect(addr, "loops-bn", sensorPassword)
	if err != nil {
		t.Fatalf("sensor connect: %v", err)
	}
	defer c.Disconnect(50)
	c.Publish(topic, 1, retained, payload).WaitTimeout(3 * time.Second)
}

// TestAnonymousClientsAreRefused: finding C1. Nobody reaches the embedded
// server without a user, on the NATS port or the MQTT port.
func TestAnonymousClientsAreRefused(t *testing.T) {
	ls := startLocked(t)
	if nc, err := nats.Connect(ls.ClientURL(), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("an anonymous NATS client was let in")
	} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("anonymous NATS client: %v, want an authorization violation", err)
	}
	if c, err := mqttConnect(ls.mqttAddr, "", ""); err == nil {
		c.Disconnect(0)
		t.Fatal("an anonymous MQTT client was let in")
	}
	if c, err := mqttConnect(ls.mqttAddr, "loops-bn", "wrong"); err == nil {
		c.Disconnect(0)
		t.Fatal("a sensor with a wrong password was let in")
	}
	// A sensor's user is for MQTT only.
	if nc, err := nats.Connect(ls.ClientURL(), nats.UserInfo("loops-bn", sensorPassword), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a sensor's user connected over the NATS protocol")
	}
}

// TestSensorPublishesOnlyItsSubjects: finding C1. A sensor's message
// reaches the hub's account on its own subjects; nothing else it tries
// (an event subject, the JetStream API, reading events) has any effect.
func TestSensorPublishesOnlyItsSubjects(t *testing.T) {
	ls := startLocked(t)
	for _, topic := range []string{
		"ioc/health/visit/v1",               // an event of a hospital
		"$JS/API/STREAM/DELETE/IOC_EVENTS",  // the event log
		"$JS/API/STREAM/PURGE/IOC_DLQ",      // the dead letters
		"traffic/sensors/hcm/LOOP-1/counts", // another group's sensors
		"traffic/sensors/bnx/LOOP-1/counts", // a prefix of its group, not its group
	} {
		sensorPublish(t, ls.mqttAddr, topic, false, []byte(`{"specversion":"1.0"}`))
	}
	// A subscription to the events gets nothing.
	c, err := mqttConnect(ls.mqttAddr, "loops-bn", sensorPassword)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	c.Subscribe("ioc/#", 0, func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() }).WaitTimeout(3 * time.Second)
	ops, _ := ls.Connect(t)
	if err := ops.Publish("ioc.health.visit.v1", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	_ = ops.Flush()
	// The sensor's own subject flows into the hub's account: once it is
	// there, everything published before it has been decided.
	sensorPublish(t, ls.mqttAddr, "traffic/sensors/bn/LOOP-7/counts", false, []byte(`{"sensor":"LOOP-7"}`))
	deadline := time.Now().Add(20 * time.Second)
	for ls.count(t, "SENSORS_TEST") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the sensor's own message never reached the hub's account")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Disconnect(50)
	if n := ls.count(t, "SENSORS_TEST"); n != 1 {
		t.Fatalf("%d sensor messages stored, want only the one on the sensor's subjects", n)
	}
	if n := ls.count(t, natsjs.EventsStream); n != 1 {
		t.Fatalf("IOC_EVENTS holds %d messages, want only the operator's one", n)
	}
	if n := ls.count(t, natsjs.DLQStream); n != 0 {
		t.Fatalf("IOC_DLQ holds %d", n)
	}
	select {
	case topic := <-got:
		t.Fatalf("the sensor read %s", topic)
	default:
	}
}

// TestSensorsCannotFillTheHubsStore: retained messages count against the
// sensors' own account, never the hub's.
func TestSensorsCannotFillTheHubsStore(t *testing.T) {
	ls := startLocked(t) // sensors may keep 1 MiB
	big := make([]byte, 200<<10)
	for i := range 12 {
		sensorPublish(t, ls.mqttAddr, fmt.Sprintf("traffic/sensors/bn/LOOP-%d/state", i), true, big)
	}
	acc, err := ls.LookupAccount(natsjs.SensorAccount)
	if err != nil {
		t.Fatal(err)
	}
	usage := acc.JetStreamUsage()
	if usage.Store > 1<<20 {
		t.Fatalf("the sensors' account stores %d bytes, over its 1 MiB", usage.Store)
	}
	hub, _ := ls.LookupAccount(natsjs.HubAccount)
	if u := hub.JetStreamUsage(); u.Store > 4<<20 {
		t.Fatalf("the hub's account grew to %d bytes from retained sensor messages", u.Store)
	}
}

// TestProducerPublishesOnlyItsTypes: a direct producer publishes its
// types' subjects and reads its acks on its own inbox; the JetStream API,
// other types and other clients' inboxes are closed to it.
func TestProducerPublishesOnlyItsTypes(t *testing.T) {
	ls := startLocked(t)
	pub, _ := ls.producer.PublicKey()
	violations := make(chan error, 10)
	nc, err := nats.Connect(ls.ClientURL(), nats.Nkey(pub, ls.producer.Sign), nats.CustomInboxPrefix(natsjs.ProducerInbox("lab-his")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatalf("producer connect: %v", err)
	}
	defer nc.Close()
	js, _ := natsjs.NewJetStream(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, msg(t, "/health/lab", "1")); err != nil {
		t.Fatalf("publish of its own type: %v", err)
	}
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}
	other := msg(t, "/health/lab", "2")
	other.Subject = "ioc.traffic.flow.v1"
	if _, err := js.PublishMsg(short(), other); err == nil {
		t.Fatal("a producer published another type")
	}
	if _, err := nc.Request("$JS.API.STREAM.DELETE."+natsjs.EventsStream, nil, 500*time.Millisecond); err == nil {
		t.Fatal("a producer reached the JetStream API")
	}
	for _, subj := range []string{"ioc.>", "_INBOX.>", "dlq.>"} {
		sub, err := nc.SubscribeSync(subj)
		if err == nil {
			_ = nc.Flush()
			if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
				t.Fatalf("a producer read %s", m.Subject)
			}
		}
	}
	if n := ls.count(t, natsjs.EventsStream); n != 1 {
		t.Fatalf("IOC_EVENTS holds %d, want the producer's one event", n)
	}
	seen := 0
	for len(violations) > 0 {
		if err := <-violations; strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			seen++
		}
	}
	if seen == 0 {
		t.Fatal("the server reported no permissions violation")
	}
}

func TestAccessValidate(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	hash := bcryptOf(t, "x")
	for _, tc := range []struct {
		name string
		user natsjs.User
		want string
	}{
		{"operator with nkey", natsjs.User{Name: "ops", Role: natsjs.RoleOperator, NKey: pub}, ""},
		{"no credential", natsjs.User{Name: "ops", Role: natsjs.RoleOperator}, "give nkey or password_bcrypt"},
		{"clear password", natsjs.User{Name: "ops", Role: natsjs.RoleOperator, PasswordBcrypt: "hunter2"}, "never the password"},
		{"seed instead of public key", natsjs.User{Name: "ops", Role: natsjs.RoleOperator, NKey: "SUAB"}, "public NKey"},
		{"sensor with nkey", natsjs.User{Name: "s", Role: natsjs.RoleSensor, NKey: pub, Subjects: []string{"traffic.sensors.a.>"}}, "password_bcrypt"},
		{"sensor outside its subjects", natsjs.User{Name: "s", Role: natsjs.RoleSensor, PasswordBcrypt: hash, Subjects: []string{"ioc.>"}}, "under traffic.sensors."},
		{"sensor everything", natsjs.User{Name: "s", Role: natsjs.RoleSensor, PasswordBcrypt: hash, Subjects: []string{"traffic.sensors.>"}}, ""},
		{"producer without scope", natsjs.User{Name: "p", Role: natsjs.RoleProducer, NKey: pub}, "sources must list"},
		{"producer type prefix mid-token", natsjs.User{Name: "p", Role: natsjs.RoleProducer, NKey: pub, Scope: scope([]string{"/a"}, "vn.ioc.heal*")}, "end on a dot"},
		{"producer", natsjs.User{Name: "p", Role: natsjs.RoleProducer, NKey: pub, Scope: scope([]string{"/a"}, "vn.ioc.health.*")}, ""},
		{"unknown role", natsjs.User{Name: "p", Role: "admin", NKey: pub}, "role must be"},
		{"subscriber", natsjs.User{Name: "yte", Role: natsjs.RoleSubscriber, Agency: "so-y-te", NKey: pub}, ""},
		{"subscriber without agency", natsjs.User{Name: "yte", Role: natsjs.RoleSubscriber, NKey: pub}, "agency must name"},
		{"subscriber with types", natsjs.User{Name: "yte", Role: natsjs.RoleSubscriber, Agency: "so-y-te", NKey: pub, Scope: scope(nil, "vn.ioc.health.*")}, "grants allow"},
		{"agency on a producer", natsjs.User{Name: "p", Role: natsjs.RoleProducer, Agency: "so-y-te", NKey: pub, Scope: scope([]string{"/a"}, "vn.ioc.health.*")}, "agency is for a subscriber"},
		{"hub's own name", natsjs.User{Name: natsjs.HubUser, Role: natsjs.RoleOperator, NKey: pub}, "already used"},
		{"name not a subject token", natsjs.User{Name: "a.b", Role: natsjs.RoleOperator, NKey: pub}, "name must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := natsjs.Access{Users: []natsjs.User{tc.user}}.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestStoreOfTheGlobalAccountMovesToTheHubs: a data dir written before the
// hub had accounts keeps every message.
func TestStoreOfTheGlobalAccountMovesToTheHubs(t *testing.T) {
	dir := t.TempDir()
	old, err := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, DontListen: true, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	old.Start()
	if !old.ReadyForConnections(10 * time.Second) {
		t.Fatal("old server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(old))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := natsjs.NewJetStream(nc)
	ctx := context.Background()
	if err := natsjs.Declare(ctx, js, natsjs.StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := js.PublishMsg(ctx, msg(t, "/a", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	nc.Close()
	old.Shutdown()
	old.WaitForShutdown()

	srv := natsjstest.RunInDir(t, dir)
	_, js = srv.Connect(t)
	s, err := js.Stream(ctx, natsjs.EventsStream)
	if err != nil {
		t.Fatalf("IOC_EVENTS after the move: %v", err)
	}
	info, _ := s.Info(ctx)
	if info.State.Msgs != 3 {
		t.Fatalf("IOC_EVENTS holds %d events after the move, want 3", info.State.Msgs)
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream", "$G")); !os.IsNotExist(err) {
		t.Fatalf("the old account's store is still there: %v", err)
	}
}

// TestTLSListener: with nats.tls, clients connect over TLS (checking the
// server against its CA) and a plain connection is refused.
func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := selfSigned(t, dir)
	srv := natsjstest.RunWith(t, natsjs.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: t.TempDir(),
		Access: natsjs.Access{TLS: natsjs.TLSFiles{Cert: cert, Key: key}}})
	auth := natsjs.ClientAuth{NKey: srv.OperatorSeedFile(t), TLSCA: ca}
	opts, err := auth.Options()
	if err != nil {
		t.Fatal(err)
	}
	url := strings.Replace(srv.ClientURL(), "nats://", "tls://", 1)
	nc, err := nats.Connect(url, append(opts, nats.MaxReconnects(0))...)
	if err != nil {
		t.Fatalf("TLS connect: %v", err)
	}
	if !nc.TLSRequired() {
		t.Fatal("the connection is not TLS")
	}
	nc.Close()
	plain, _ := natsjs.ClientAuth{NKey: srv.OperatorSeedFile(t)}.Options()
	if nc, err := nats.Connect(srv.ClientURL(), append(plain, nats.MaxReconnects(0))...); err == nil {
		nc.Close()
		t.Fatal("a client without the CA connected")
	}
}

func TestClientAuthNamesItsMistakes(t *testing.T) {
	for _, tc := range []struct {
		auth natsjs.ClientAuth
		want string
	}{
		{natsjs.ClientAuth{NKey: "/nonexistent/seed"}, "--nats-nkey"},
		{natsjs.ClientAuth{User: "ops"}, "go together"},
		{natsjs.ClientAuth{Creds: "/nonexistent/creds"}, "--nats-creds"},
		{natsjs.ClientAuth{TLSCert: "c.pem"}, "--nats-tls-cert and --nats-tls-key"},
	} {
		if _, err := tc.auth.Options(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.auth, err, tc.want)
		}
	}
}

// selfSigned writes a CA and a server certificate for 127.0.0.1 it signed.
func selfSigned(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "iochub test CA"}, IsCA: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", der), write("server-key.pem", "EC PRIVATE KEY", keyDER)
}

func scope(sources []string, types ...string) event.Scope {
	return event.Scope{Sources: sources, Types: types}
}

func TestDisplayURLHidesPasswords(t *testing.T) {
	for in, want := range map[string]string{
		"":                            "embedded",
		"nats://ops:secret@h:4222":    "nats://ops:xxxxx@h:4222",
		"nats://a:1@h1,nats://b:2@h2": "nats://a:xxxxx@h1,nats://b:xxxxx@h2",
		"nats://token@h:4222":         "nats://xxxxx@h:4222",
	} {
		if got := natsjs.DisplayURL(in); got != want {
			t.Errorf("DisplayURL(%q) = %q, want %q", in, got, want)
		}
	}
}
