// Command iochub-sim runs simulated sector systems — a dossier API, a FHIR
// server, CSV export directories, MQTT traffic sensors, the field-report
// portal's and the incident centre's webhooks — where a hub's config file
// says its connectors read, fed with a demo province: the last days, then
// live. It is for trying the hub (`make run` starts it beside `iochub run`)
// and for tests; it is a binary of its own so that the hub's binary carries
// no MQTT client and no simulator.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/configfile"
	"github.com/iochub/iochub/pkg/logging"
	"github.com/iochub/iochub/services/connectors"
	"github.com/iochub/iochub/sim"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "iochub-sim: %v\n", err)
			os.Exit(1)
		}
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("iochub-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var configFile, dataDir, mqttAddr, mqttUser, mqttPassword, hubURL, partnerToken, pushListen string
	var history time.Duration
	fs.StringVar(&configFile, "config", "deploy/iochub.dev.yaml", "the hub's config file: its connectors say where each system must be")
	fs.StringVar(&dataDir, "data-dir", "data", "the hub's --data-dir (${DATA_DIR} in the config file)")
	fs.StringVar(&mqttAddr, "mqtt", "127.0.0.1:1883", "the MQTT listener the sensors publish to (the hub's --mqtt-listen)")
	fs.StringVar(&mqttUser, "mqtt-user", "dev-sensors", "the sensors' MQTT user (a user of role sensor in the hub's nats.users)")
	fs.StringVar(&mqttPassword, "mqtt-password", "dev-sensor-password-not-for-production", "its password (deploy/iochub.dev.yaml's by default)")
	fs.StringVar(&hubURL, "hub", "http://127.0.0.1:8080", "the hub's HTTP address, for the portal's and incident centre's webhooks")
	fs.DurationVar(&history, "history", 72*time.Hour, "how much of the past to send at start")
	fs.StringVar(&pushListen, "push-partner-listen", "127.0.0.1:18093", "where the simulated partner's push endpoint listens (under its push_urls); empty: no push partner")
	fs.StringVar(&partnerToken, "partner-token", "dev-partner-token-not-for-production", "a partner agency's token (sharing.agencies of the hub's config): a simulated partner subscribes to the traffic events with it and pulls them; empty: none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var file struct {
		Connectors connectors.Config `yaml:"connectors"`
	}
	if err := configfile.Decode(configFile, dataDir, &file, false); err != nil {
		return err
	}
	if err := file.Connectors.Validate(); err != nil {
		return err
	}
	log, err := logging.New("info")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	s, err := sim.SystemsFor(file.Connectors, mqttAddr, strings.TrimRight(hubURL, "/"), history, log)
	if err != nil {
		return err
	}
	s.MQTTUser, s.MQTTPassword = mqttUser, mqttPassword
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if partnerToken != "" {
		p := &sim.Partner{Hub: strings.TrimRight(hubURL, "/"), Token: partnerToken, Subscription: "dev-partner-traffic",
			Types: []string{"vn.ioc.traffic.*"}, Log: log}
		go func() { _ = p.Run(ctx) }()
		if pushListen != "" {
			pr := &sim.PushReceiver{Hub: strings.TrimRight(hubURL, "/"), Token: partnerToken, Subscription: "dev-partner-reports",
				Types: []string{"vn.ioc.feedback.*"}, Listen: pushListen, Log: log}
			go func() {
				if err := pr.Run(ctx); err != nil {
					log.Warn("push partner", zap.Error(err))
				}
			}()
		}
	}
	return sim.Run(ctx, s)
}
