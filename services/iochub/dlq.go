package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/admit"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/monitor"
)

const dlqUsage = `Usage:
  iochub dlq list [--limit N]        the newest dead letters: sequence, time, type, event, reason
  iochub dlq show SEQ                one dead letter: headers and the original event
  iochub dlq replay SEQ | --all      validate with this binary's schemas and publish again, the
                                     event's identity kept (a second replay cannot count twice)
  iochub dlq purge SEQ | --all       delete
Flags: --nats-url (default nats://127.0.0.1:4222, the hub's --nats-listen; IOCHUB_NATS_URL), as
a user of role operator in the hub's nats.users: nats://USER:PASSWORD@host:port in the URL,
or --nats-nkey SEEDFILE, --nats-user with --nats-password-file, --nats-creds; --nats-tls-ca
when the server has TLS.
The same over HTTP with an admin token: GET /v1/ops/dlq, GET /v1/ops/dlq/{seq},
POST /v1/ops/dlq/{seq}/replay, POST /v1/ops/dlq/replay, DELETE /v1/ops/dlq/{seq}.
`

// runDLQ is `iochub dlq`.
func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("iochub dlq "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	conn := operatorFlags(fs)
	limit := fs.Int("limit", 50, "list: how many")
	all := fs.Bool("all", false, "replay or purge: every dead letter")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	var seq uint64
	if a := fs.Arg(0); a != "" {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return fmt.Errorf("dlq %s: %q is not a sequence number (see iochub dlq list)", args[0], a)
		}
		seq = n
	}
	nc, js, err := conn("iochub dlq")
	if err != nil {
		return err
	}
	defer nc.Close()
	m := monitor.New(monitor.Config{}, monitor.Deps{NC: nc, JS: js, Log: zap.NewNop()})
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	switch args[0] {
	case "list":
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTIME\tTYPE\tSOURCE / ID\tREASON")
		for _, d := range m.ListDLQ(ctx, *limit) {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s / %s\t%s\n", d.Seq, d.Time.Format(time.RFC3339), d.Subject, d.Source, d.ID, d.Reason)
		}
		return tw.Flush()
	case "show":
		if seq == 0 {
			return errors.New("dlq show: give the sequence (see iochub dlq list)")
		}
		d, err := m.ShowDLQ(ctx, seq)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	case "replay":
		reg, err := schema.Load(schemas.FS)
		if err != nil {
			return err
		}
		if *all {
			n, errs := m.ReplayAll(ctx, cliWho(), admit.New(reg, nil, 0))
			fmt.Fprintf(stdout, "replayed %d\n", n)
			for _, e := range errs {
				fmt.Fprintf(stdout, "not replayed: %v\n", e)
			}
			return nil
		}
		if seq == 0 {
			return errors.New("dlq replay: give a sequence or --all")
		}
		if err := m.Replay(ctx, cliWho(), seq, admit.New(reg, nil, 0)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "replayed %d\n", seq)
		return nil
	case "purge":
		if !*all && seq == 0 {
			return errors.New("dlq purge: give a sequence or --all")
		}
		if err := m.Purge(ctx, cliWho(), seq); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "purged")
		return nil
	}
	fmt.Fprint(stderr, dlqUsage)
	return errUsage
}

// cliWho is the administrator of a command run on this machine: the
// operating system's user at this host, an operator of the NATS server.
func cliWho() monitor.Who {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return monitor.Who{Actor: "cli:" + name + "@" + host, Role: "operator", Via: "cli"}
}

// operatorFlags registers --nats-url and the credential flags on fs; the
// function it returns connects with them, as an operator of the hub.
func operatorFlags(fs *flag.FlagSet) func(name string) (*nats.Conn, jetstream.JetStream, error) {
	url := fs.String("nats-url", envOr("IOCHUB_NATS_URL", "nats://127.0.0.1:4222"), "the hub's NATS server")
	var auth natsjs.ClientAuth
	auth.RegisterFlags("", fs)
	return func(name string) (*nats.Conn, jetstream.JetStream, error) {
		opts, err := auth.Options()
		if err != nil {
			return nil, nil, err
		}
		nc, err := nats.Connect(*url, append(opts, nats.Name(name), nats.Timeout(5*time.Second))...)
		if errors.Is(err, nats.ErrAuthorization) {
			return nil, nil, fmt.Errorf("nats %s: %w: connect as an operator of the hub's nats.users (nats://USER:PASSWORD@host:port, --nats-nkey or --nats-creds)", natsjs.DisplayURL(*url), err)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("nats %s: %w (is the hub running? --nats-url)", natsjs.DisplayURL(*url), err)
		}
		js, err := natsjs.NewJetStream(nc)
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		return nc, js, nil
	}
}
