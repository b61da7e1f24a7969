package connectors

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/services/connectors/csvdir"
	"github.com/iochub/iochub/services/connectors/education"
	"github.com/iochub/iochub/services/connectors/feedback"
	"github.com/iochub/iochub/services/connectors/health"
	"github.com/iochub/iochub/services/connectors/publicservice"
	"github.com/iochub/iochub/services/connectors/traffic"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Config is the connectors part of the config file; a sector left out has
// no connector.
type Config struct {
	PublicService *struct {
		URL      string        `yaml:"url"`
		Token    string        `yaml:"token"`
		Interval time.Duration `yaml:"interval"`
	} `yaml:"publicservice"`
	Health *struct {
		FHIRURL    string            `yaml:"fhir_url"`
		Token      string            `yaml:"token"`
		Interval   time.Duration     `yaml:"interval"`
		Facilities map[string]string `yaml:"facilities"`
		BedsDir    string            `yaml:"beds_dir"`
	} `yaml:"health"`
	Education *struct {
		Dir      string        `yaml:"dir"`
		Interval time.Duration `yaml:"interval"`
	} `yaml:"education"`
	Traffic *struct {
		Sensors        bool   `yaml:"sensors"`
		IncidentSecret string `yaml:"incident_secret"`
		// IncidentPreviousSecret is accepted too while the incident centre
		// moves to a new secret.
		IncidentPreviousSecret string `yaml:"incident_previous_secret"`
	} `yaml:"traffic"`
	Feedback *struct {
		Secret string `yaml:"secret"`
		// PreviousSecret is accepted too while the portal moves to a new one.
		PreviousSecret string `yaml:"previous_secret"`
	} `yaml:"feedback"`
}

// Validate names every problem.
func (c *Config) Validate() error {
	var errs []error
	if p := c.PublicService; p != nil && p.URL == "" {
		errs = append(errs, errors.New("connectors.publicservice.url is required"))
	}
	if h := c.Health; h != nil && h.FHIRURL == "" && h.BedsDir == "" {
		errs = append(errs, errors.New("connectors.health: set fhir_url, beds_dir or both"))
	}
	if e := c.Education; e != nil && e.Dir == "" {
		errs = append(errs, errors.New("connectors.education.dir is required"))
	}
	if t := c.Traffic; t != nil && t.IncidentSecret != "" && len(t.IncidentSecret) < 16 {
		errs = append(errs, errors.New("connectors.traffic.incident_secret: 16 characters or more"))
	}
	if f := c.Feedback; f != nil && len(f.Secret) < 16 {
		errs = append(errs, errors.New("connectors.feedback.secret: 16 characters or more"))
	}
	return errors.Join(errs...)
}

// UsesSensors reports whether the traffic sensors' stream is read.
func (c *Config) UsesSensors() bool { return c.Traffic != nil && c.Traffic.Sensors }

// Deps are what every runner shares.
type Deps struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Registry *schema.Registry
	Pseudo   *pii.Pseudonymizer
	Log      *zap.Logger
}

// Webhook paths on the hub's HTTP listener.
const (
	FeedbackWebhookPath  = "/v1/webhooks/feedback"
	IncidentsWebhookPath = "/v1/webhooks/traffic-incidents"
)

// Set is the configured connectors: their runners and the webhooks to mount.
type Set struct {
	Runners  []*connector.Runner
	Webhooks map[string]http.Handler
}

// Build makes the runners and webhooks of cfg, which must have passed
// Validate.
func Build(cfg Config, d Deps) *Set {
	s := &Set{Webhooks: map[string]http.Handler{}}
	add := func(name string, src connector.Source, m connector.Mapper) {
		s.Runners = append(s.Runners, &connector.Runner{Name: name, Source: src, Map: m, Registry: d.Registry, Pseudo: d.Pseudo, JS: d.JS, Log: d.Log})
	}
	if p := cfg.PublicService; p != nil {
		add("publicservice-dvc", &publicservice.Poller{BaseURL: p.URL, Token: p.Token, Interval: p.Interval}, publicservice.Map)
	}
	if h := cfg.Health; h != nil {
		if h.FHIRURL != "" {
			add("health-fhir", &health.Poller{BaseURL: h.FHIRURL, Token: h.Token, Interval: h.Interval}, health.Mapper{Facilities: h.Facilities}.Map)
		}
		if h.BedsDir != "" {
			add("health-beds", &csvdir.Source{Dir: h.BedsDir, Poll: h.Interval}, health.MapBeds)
		}
	}
	if e := cfg.Education; e != nil {
		add("education-csv", &education.Source{Dir: e.Dir, Poll: e.Interval}, education.Map)
	}
	if t := cfg.Traffic; t != nil {
		if t.Sensors {
			add("traffic-sensors", &traffic.SensorSource{Conn: d.NC}, traffic.MapFlow)
		}
		if t.IncidentSecret != "" {
			w := traffic.NewIncidentWebhook([]byte(t.IncidentSecret))
			w.PreviousSecret = []byte(t.IncidentPreviousSecret)
			add("traffic-incidents", w, traffic.MapIncident)
			s.Webhooks[IncidentsWebhookPath] = w
		}
	}
	if f := cfg.Feedback; f != nil {
		w := feedback.NewWebhook([]byte(f.Secret))
		w.PreviousSecret = []byte(f.PreviousSecret)
		add("feedback-portal", w, feedback.Map)
		s.Webhooks[FeedbackWebhookPath] = w
	}
	return s
}

// Reserved maps the source prefixes of the configured connectors to their
// names: the events under them are the connectors' own, and the gateway
// refuses them to producers (an identity is its sender's).
func (c *Config) Reserved() map[string]string {
	out := map[string]string{}
	if c.PublicService != nil {
		out[publicservice.Source] = "publicservice-dvc"
	}
	if h := c.Health; h != nil {
		if h.FHIRURL != "" {
			out[health.FHIRSources] = "health-fhir"
		}
		if h.BedsDir != "" {
			out[health.BedSources] = "health-beds"
		}
	}
	if c.Education != nil {
		out[education.EventSource] = "education-csv"
	}
	if t := c.Traffic; t != nil {
		if t.Sensors {
			out[traffic.SensorSources] = "traffic-sensors"
		}
		if t.IncidentSecret != "" {
			out[traffic.IncidentSource] = "traffic-incidents"
		}
	}
	if c.Feedback != nil {
		out[feedback.Source] = "feedback-portal"
	}
	return out
}

// Prepare declares what must exist before any source system sends: the
// sensors' stream.
func (c *Config) Prepare(ctx context.Context, js jetstream.JetStream) error {
	if c.UsesSensors() {
		if err := traffic.DeclareSensorStream(ctx, js); err != nil {
			return fmt.Errorf("traffic sensors: %w", err)
		}
	}
	return nil
}
