package hub

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/iochub/iochub/services/connectors"
	"github.com/iochub/iochub/services/connectors/simulate"
)

// simulate runs the simulated sector systems where the connectors config
// points (--simulate), so the connectors have something to read.
func (h *Hub) simulate(ctx context.Context) error {
	s, err := SimulatedSystems(h.cfg, "http://"+h.HTTPAddr(), h.log)
	if err != nil {
		return err
	}
	return simulate.Run(ctx, s)
}

// SimulatedSystems places the simulated systems where cfg's connectors read:
// the dossier API and FHIR server on their URLs' addresses, the exports in
// their directories, the sensors on --mqtt-listen, the webhooks to hubBase.
func SimulatedSystems(cfg Config, hubBase string, log *zap.Logger) (simulate.Systems, error) {
	c := cfg.File.Connectors
	hostOf := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			return ""
		}
		return u.Host
	}
	s := simulate.Systems{History: cfg.SimHistory, Tick: 5 * time.Second, MalformedEvery: 500,
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
		s.MQTTAddr, s.IncidentsURL, s.IncidentSecret = cfg.MQTTListen, hubBase+connectors.IncidentsWebhookPath, []byte(c.Traffic.IncidentSecret)
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
