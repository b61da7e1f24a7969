package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/iochub/iochub/pkg/audit"
)

const auditUsage = `Usage:
  iochub audit list [--limit N]     the newest records: number, time, who, role, way in, action, target, outcome
  iochub audit verify [--file F] [--public-key K]
                                    check the hash chain of the log (IOC_AUDIT), or of an exported copy,
                                    and its daily roots signed by the hub (Ed25519); prints the number
                                    and hash of the last record and the roots' key. With --public-key
                                    (base64, as printed), every root must be signed by that key: a log
                                    rebuilt from its start without the hub's key is then found
  iochub audit export               every record, one JSON line each, to keep a copy elsewhere
Flags: --nats-url and the credentials of an operator, as for iochub dlq.
`

// runAudit is `iochub audit`.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("iochub audit "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	conn := operatorFlags(fs)
	limit := fs.Int("limit", 50, "list: how many")
	file := fs.String("file", "", "verify: an exported copy instead of the stream")
	pub := fs.String("public-key", "", "verify: the hub's root key (base64); every signed root must be signed by it")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var v audit.Verifier
	if *pub != "" {
		k, err := base64.StdEncoding.DecodeString(*pub)
		if err != nil || len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("audit verify: --public-key: want the base64 of an Ed25519 public key (32 bytes)")
		}
		v.PublicKey = k
	}
	if args[0] == "verify" && *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			return fmt.Errorf("audit verify: %w", err)
		}
		lines := bytes.Split(b, []byte("\n"))
		n, err := v.Lines(lines)
		if err != nil {
			return fmt.Errorf("audit verify %s: %w", *file, err)
		}
		return printHead(stdout, n, lastHash(lines), v, rootKey(lines))
	}
	switch args[0] {
	case "list", "verify", "export":
	default:
		fmt.Fprint(stderr, auditUsage)
		return errUsage
	}
	nc, js, err := conn("iochub audit")
	if err != nil {
		return err
	}
	defer nc.Close()
	log := audit.Log{JS: js}
	switch args[0] {
	case "verify":
		var last audit.Record
		var lines [][]byte
		err := log.Records(ctx, func(_ uint64, raw []byte) error {
			r, err := v.Next(raw)
			last = r
			if r.Action == audit.ActionRoot {
				lines = append(lines, raw)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("audit verify: %w", err)
		}
		return printHead(stdout, last.N, last.Hash, v, rootKey(lines))
	case "export":
		return log.Export(ctx, stdout)
	}
	var recs []audit.Record
	if err := log.Records(ctx, func(_ uint64, raw []byte) error {
		var r audit.Record
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		if recs = append(recs, r); len(recs) > *limit {
			recs = recs[1:]
		}
		return nil
	}); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "N\tTIME\tWHO\tROLE\tVIA\tACTION\tTARGET\tOUTCOME")
	for _, r := range recs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.N, r.Time.Format(time.RFC3339), r.Actor, r.Role, r.Via, r.Action, r.Target, r.Outcome)
	}
	return tw.Flush()
}

func printHead(w io.Writer, n uint64, hash string, v audit.Verifier, key string) error {
	if n == 0 {
		_, err := fmt.Fprintln(w, "audit log: empty")
		return err
	}
	_, err := fmt.Fprintf(w, "audit log: %d records, the chain holds; last record %d, hash %s\n", n, n, hash)
	if err == nil && v.Roots > 0 {
		pinned := "check it is the hub's: iochub audit verify --public-key " + key
		if v.PublicKey != nil {
			pinned = "the key given"
		}
		_, err = fmt.Fprintf(w, "%d signed roots hold, signed by %s (%s)\n", v.Roots, key, pinned)
	}
	return err
}

// rootKey is the public key of the last signed root among lines.
func rootKey(lines [][]byte) string {
	for i := len(lines) - 1; i >= 0; i-- {
		var r audit.Record
		var root audit.Root
		if json.Unmarshal(lines[i], &r) == nil && r.Action == audit.ActionRoot && json.Unmarshal(r.Detail, &root) == nil {
			return root.PublicKey
		}
	}
	return ""
}

func lastHash(lines [][]byte) string {
	for i := len(lines) - 1; i >= 0; i-- {
		var r audit.Record
		if json.Unmarshal(lines[i], &r) == nil && r.Hash != "" {
			return r.Hash
		}
	}
	return ""
}
