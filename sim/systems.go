package sim

import (
	"fmt"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/iochub/iochub/services/connectors"
)

// SystemsFor places the simulated systems where the hub's connectors read
// (the connectors part of its config file): the dossier API and FHIR server
// on their URLs' addresses, the exports in their directories, the sensors
// on mqttAddr (the hub's --mqtt-listen), the webhooks to hubBase.
func SystemsFor(c connectors.Config, mqttAddr, hubBase string, history time.Duration, log *zap.Logger) (Systems, error) {
	hostOf := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			return ""
		}
		return u.Host
	}
	s := Systems{History: history, Tick: 5 * time.Second, MalformedEvery: 500,
		OnError: func(err error) { log.Warn("simulated systems", zap.Error(err)) }}
	if s.History <= 0 {
		s.History = 72 * time.Hour
	}
	if c.PublicService != nil {
		s.DossierAddr = hostOf(c.PublicService.URL)
	}
	if c.Health != nil {
		s.FHIRAddr, s.BedsDir = hostOf(c.Health.FHIRURL), c.Health.BedsDir
	}
	if c.Education != nil {
		s.AttendanceDir = c.Education.Dir
	}
	if c.Traffic != nil {
		s.MQTTAddr, s.IncidentsURL, s.IncidentSecret = mqttAddr, hubBase+connectors.IncidentsWebhookPath, []byte(c.Traffic.IncidentSecret)
	}
	if c.Feedback != nil {
		s.FeedbackURL, s.FeedbackSecret = hubBase+connectors.FeedbackWebhookPath, []byte(c.Feedback.Secret)
	}
	if s.DossierAddr == "" || s.FHIRAddr == "" || s.AttendanceDir == "" || s.BedsDir == "" || s.MQTTAddr == "" || s.FeedbackURL == "" || s.IncidentsURL == "" {
		return s, fmt.Errorf("simulating needs every connector configured and an MQTT address (see deploy/iochub.dev.yaml)")
	}
	log.Info("simulated sector systems", zap.String("dossier_api", s.DossierAddr), zap.String("fhir", s.FHIRAddr),
		zap.String("mqtt", s.MQTTAddr), zap.String("attendance", s.AttendanceDir), zap.String("beds", s.BedsDir), zap.String("hub", hubBase))
	return s, nil
}
