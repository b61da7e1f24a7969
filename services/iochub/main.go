// Command iochub is the all-in-one iochub binary: `iochub run` starts the
// embedded JetStream server (unless --nats-url) and the services --services
// names — gateway, aggregator, connectors, iocapi, monitor — in one process;
// `iochub dlq` works on the dead letters, `iochub token` makes a producer
// token.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // the IOC's time zone on a machine without a zone database

	"github.com/iochub/iochub/pkg/flagenv"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/logging"
	"github.com/iochub/iochub/services/iochub/internal/hub"
)

const usage = `iochub — event hub of the Intelligent Operations Center

Usage:
  iochub run [flags]     start the hub: embedded JetStream (unless --nats-url), gateway,
                         aggregator, connectors (the sector systems of the config file),
                         iocapi and monitor; --services picks a subset
  iochub dlq list|show|replay|purge   the dead letters (iochub dlq for its usage)
  iochub audit list|verify|export   the administrators' actions, hash-chained (iochub audit for its usage)
  iochub token           make a producer token and the token_sha256 for the config file
  iochub natsuser NAME --role operator|producer|sensor [--nkey SEEDFILE]
                         make a user of the embedded NATS server for nats.users
  iochub help            this text, and the flags of run

Every flag of run has an environment twin: --clickhouse-dsn is IOCHUB_CLICKHOUSE_DSN.
HTTP: POST /v1/events (CloudEvents), /v1/kpis, /v1/areas, the dashboard at /, the ops
page at /ops, /v1/ops/*, /metrics, POST /v1/webhooks/*, GET /healthz, GET /readyz.

Flags of run:
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks errors already explained by the flag package.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = runHub(ctx, args[1:], stdout, stderr)
	case "dlq":
		err = runDLQ(ctx, args[1:], stdout, stderr)
	case "token":
		err = newToken(stdout)
	case "audit":
		err = runAudit(ctx, args[1:], stdout, stderr)
	case "natsuser":
		err = runNATSUser(args[1:], stdout, stderr)
	case "help", "-h", "--help", "-help":
		printUsage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "iochub: unknown command %q; try `iochub help`\n", args[0])
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "iochub: %s\n", oneLine(err))
		return 1
	}
}

func flags(cfg *hub.Config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("iochub run", flag.ContinueOnError)
	fs.SetOutput(out)
	cfg.RegisterFlags(fs)
	flagenv.Usage(fs, "IOCHUB")
	fs.Usage = func() {
		fmt.Fprint(out, usage)
		fs.PrintDefaults()
	}
	return fs
}

func printUsage(w io.Writer) {
	cfg := hub.DefaultConfig()
	flags(&cfg, w).Usage()
}

func runHub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := hub.DefaultConfig()
	fs := flags(&cfg, io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return err
		}
		fmt.Fprintf(stderr, "iochub run: %v (see `iochub help`)\n", err)
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "iochub run: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if err := flagenv.Apply(fs, "IOCHUB"); err != nil {
		return err
	}
	if err := cfg.Load(); err != nil {
		return err
	}
	log, err := logging.New(cfg.LogLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	h, err := hub.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	return h.Run(ctx)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newToken(w io.Writer) error {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	tok := "ioc_" + hex.EncodeToString(b[:])
	fmt.Fprintf(w, "token:        %s\ntoken_sha256: %s\n", tok, httpedge.HashToken(tok))
	return nil
}

// oneLine keeps a joined multi-error readable on one line.
func oneLine(err error) string {
	s := err.Error()
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r == '\n' {
			out = append(out, ';', ' ')
			continue
		}
		out = append(out, r)
	}
	return string(out)
}
