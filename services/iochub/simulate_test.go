package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/services/iochub/internal/hub"
)

// TestSimulateCommandFillsEverySector runs a hub with every connector
// configured, then `iochub-sim` as its own process against it: the
// dossier API, FHIR server, CSV exports, MQTT sensors and webhooks it
// simulates reach all seven raw tables through the connectors within a
// minute.
func TestSimulateCommandFillsEverySector(t *testing.T) {
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
	base := startHubWith(t, dsn, func(c *hub.Config) {
		c.Services = "aggregator,connectors"
		c.NATS.DataDir = filepath.Join(dir, "hub")
		c.ConfigFile = confFile
		c.NATS.MQTTListen = mqttAddr
		if err := c.Load(); err != nil {
			t.Fatal(err)
		}
	})
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
}
