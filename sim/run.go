package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/iochub/iochub/pkg/httpedge"
)

// Systems says where each simulated system listens or sends.
type Systems struct {
	DossierAddr    string // listen address of the dossier API
	FHIRAddr       string // listen address of the FHIR server (base path /fhir)
	AttendanceDir  string // where schools drop exports
	BedsDir        string // where hospitals drop bed exports
	MQTTAddr       string // the broker the sensors publish to (host:port)
	MQTTUser       string // the sensors' MQTT user (role sensor in the hub's nats.users)
	MQTTPassword   string
	FeedbackURL    string // the hub's portal webhook
	FeedbackSecret []byte
	IncidentsURL   string // the hub's incident webhook
	IncidentSecret []byte
	History        time.Duration // how much of the past to send at start
	Tick           time.Duration // how often to send what happened since
	MalformedEvery int           // one record in N broken; 0 none
	OnError        func(error)
}

// Run starts the simulated systems and feeds them the demo province until
// ctx is done.
func Run(ctx context.Context, s Systems) error {
	if s.Tick <= 0 {
		s.Tick = 5 * time.Second
	}
	onErr := s.OnError
	if onErr == nil {
		onErr = func(error) {}
	}
	p := &Province{Dossiers: &DossierAPI{}, FHIR: &FHIRServer{}, Attendance: &ExportDir{Dir: s.AttendanceDir}, Beds: &ExportDir{Dir: s.BedsDir},
		Reports: &WebhookSender{URL: s.FeedbackURL, Secret: s.FeedbackSecret}, Incidents: &WebhookSender{URL: s.IncidentsURL, Secret: s.IncidentSecret},
		MalformedEvery: s.MalformedEvery}
	var servers []*http.Server
	defer func() {
		for _, hs := range servers {
			_ = hs.Close()
		}
	}()
	for _, x := range []struct {
		addr string
		h    http.Handler
	}{{s.DossierAddr, p.Dossiers}, {s.FHIRAddr, http.StripPrefix("/fhir", p.FHIR)}} {
		l, err := net.Listen("tcp", x.addr)
		if err != nil {
			return fmt.Errorf("simulated system on %s: %w", x.addr, err)
		}
		hs := httpedge.NewServer(x.h, httpedge.ServerConfig{})
		servers = append(servers, hs)
		go func() { _ = hs.Serve(l) }()
	}
	for _, d := range []string{s.AttendanceDir, s.BedsDir} {
		if d == "" || filepath.Clean(d) == "." {
			return errors.New("simulated exports need a directory")
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("simulated exports: %w", err)
		}
	}
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + s.MQTTAddr).SetClientID(fmt.Sprintf("iochub-sensors-%d", time.Now().UnixNano())).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).SetConnectTimeout(5 * time.Second).
		SetUsername(s.MQTTUser).SetPassword(s.MQTTPassword)
	client := mqtt.NewClient(opts)
	client.Connect() // retried in the background until the broker answers
	defer client.Disconnect(250)
	p.Sensor = func(topic string, payload []byte) error {
		tok := client.Publish(topic, 1, false, payload)
		if !tok.WaitTimeout(10 * time.Second) {
			return fmt.Errorf("mqtt publish to %s: no answer from %s", topic, s.MQTTAddr)
		}
		return tok.Error()
	}
	go p.Reports.Run(ctx)
	go p.Incidents.Run(ctx)
	p.Run(ctx, s.History, s.Tick, onErr)
	return nil
}
