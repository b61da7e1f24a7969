package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/services/iochub/internal/hub"
	"github.com/iochub/iochub/services/monitor"
)

// TestSimulateCommandFillsEverySector runs a hub with every connector
// configured, then `iochub-sim` as its own process against it: the
// dossier API, FHIR server, CSV exports, MQTT sensors and webhooks it
// simulates reach all seven raw tables through the connectors within a
// minute. The hub's monitor has the demo config's expectations
// (deploy/iochub.dev.yaml): no alert fires during its first minute.
func TestSimulateCommandFillsEverySector(t *testing.T) {
	t.Parallel() // mostly waiting out the demo's first minute: beside the other parallel tests, after the serial ones
	iochubBinary(t)
	dsn := chstoretest.NewDatabase(t)
	dir := t.TempDir()
	mqttAddr := "127.0.0.1:" + freePort(t)
	conf := fmt.Sprintf(`
pii_key: "simulate-test-pii-key-0123456789"
connectors:
  publicservice: {url: "http://127.0.0.1:%s", interval: 200ms}
  health:
    fhir_url: "http://127.0.0.1:%s/fhir"
    interval: 200ms
    beds_dir: "${DATA_DIR}/exports/beds"
  education: {dir: "${DATA_DIR}/exports/attendance", interval: 200ms}
  traffic: {sensors: true, incident_secret: "simulate-test-incident-secret"}
  feedback: {secret: "simulate-test-portal-secret"}
nats:
  users:
    - {name: dev-sensors, role: sensor, subjects: ["traffic.sensors.>"], password_bcrypt: "%s"}
`, freePort(t), freePort(t), devSensorHash)
	confFile := filepath.Join(dir, "iochub.yaml")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	demo, err := os.ReadFile("../../deploy/iochub.dev.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var dev struct {
		Monitor monitor.Config `yaml:"monitor"`
	}
	if err := yaml.Unmarshal(demo, &dev); err != nil || len(dev.Monitor.Sources) == 0 {
		t.Fatalf("the demo's monitor config: %v", err)
	}
	dev.Monitor.Interval = time.Second
	dev.Monitor.Admins = []monitor.Admin{{Name: "ops", TokenSHA256: httpedge.HashToken("ops-token")}}
	base := startHubWith(t, dsn, func(c *hub.Config) {
		c.Services = "aggregator,connectors,monitor"
		c.NATS.DataDir = filepath.Join(dir, "hub")
		c.ConfigFile = confFile
		c.NATS.MQTTListen = mqttAddr
		if err := c.Load(); err != nil {
			t.Fatal(err)
		}
		c.File.Monitor = dev.Monitor
	})
	hubStart := time.Now()
	cmd := exec.Command(simBinary(t), "--config", confFile, "--data-dir", filepath.Join(dir, "hub"), "--mqtt", mqttAddr, "--hub", base, "--history", "24h")
	cmd.Stderr = testWriter{t}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })
	s, err := chstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	for _, table := range tables {
		waitFor(t, table+" filled from its simulated system", time.Until(start.Add(time.Minute)), func() bool {
			n, err := s.Count(context.Background(), table)
			return err == nil && n > 0
		})
	}
	counts, _ := storeCounts(s)
	t.Logf("after %s: %v", time.Since(start).Round(time.Second), counts)
	// The first minute: every sample without a firing alert.
	samples := 0
	for time.Since(hubStart) < time.Minute {
		var alerts struct{ Firing []monitor.Alert }
		if code := getJSON(t, base+"/v1/ops/alerts", "ops-token", &alerts); code != http.StatusOK {
			t.Fatalf("alerts: %d", code)
		}
		if len(alerts.Firing) > 0 {
			t.Fatalf("%s after the start of the demo, alerts fire: %+v", time.Since(hubStart).Round(time.Second), alerts.Firing)
		}
		samples++
		time.Sleep(2 * time.Second)
	}
	var snap monitor.Snapshot
	getJSON(t, base+"/v1/ops/snapshot", "ops-token", &snap)
	expected := 0
	for _, src := range snap.Sources {
		if src.ExpectedInterval != "" {
			expected++
			if src.Freshness != "ok" && src.Freshness != "starting" {
				t.Errorf("source %s: %s a minute after the start", src.Source, src.Freshness)
			}
		}
	}
	if expected < 6 || samples < 10 {
		t.Errorf("%d sources with an expectation, %d looks at the alerts", expected, samples)
	}
}
