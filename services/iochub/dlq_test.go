package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/iochub/iochub/internal/polltest"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/services/iochub/internal/hub"
)

// TestDLQCommand: events that fail validation, published straight onto
// NATS, are listed by `iochub dlq list` with their reasons; a replay that
// still fails leaves them; purge empties the stream.
func TestDLQCommand(t *testing.T) {
	bin := iochubBinary(t)
	natsAddr := "127.0.0.1:" + freePort(t)
	startHubWith(t, chstoretest.NewDatabase(t), func(c *hub.Config) { c.NATS.Listen = natsAddr })
	nc, err := nats.Connect(opsURL(natsAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := natsjs.NewJetStream(nc)
	g := eventgen.New(9, "dlqcmd")
	for i := range 3 {
		e := g.Of("vn.ioc.health.visit.v1")
		e.Data = []byte(`{"visit_id": "V` + string(rune('0'+i)) + `", "kind": "telehealth"}`)
		m, _ := natsjs.EventMsg(e, e.AppendJSON(nil))
		if _, err := js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	dlq := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		cmd := exec.Command(bin, append([]string{"dlq", args[0], "--nats-url", opsURL(natsAddr)}, args[1:]...)...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("iochub dlq %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	var list string
	polltest.Until(t, "three dead letters listed", 20*time.Second, func() error {
		if list = dlq("list"); strings.Count(list, "dlq.health.visit.v1") != 3 {
			return fmt.Errorf("dlq list:\n%s", list)
		}
		return nil
	})
	if strings.Count(list, "dlq.health.visit.v1") != 3 || !strings.Contains(list, "required") {
		t.Fatalf("dlq list:\n%s", list)
	}
	if out := dlq("show", "1"); !strings.Contains(out, `"original_subject": "ioc.health.visit.v1"`) || !strings.Contains(out, "telehealth") {
		t.Errorf("dlq show 1:\n%s", out)
	}
	if out := dlq("replay", "--all"); !strings.Contains(out, "replayed 0") || strings.Count(out, "still fails the current schema") != 3 {
		t.Errorf("dlq replay --all:\n%s", out)
	}
	dlq("purge", "--all")
	if out := dlq("list"); strings.Contains(out, "dlq.health") {
		t.Errorf("after purge:\n%s", out)
	}

	// Every action of the command is on record, and the record holds.
	iochub := func(args ...string) (string, error) {
		var out bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	list, err = iochub("audit", "list", "--nats-url", opsURL(natsAddr))
	if err != nil || !strings.Contains(list, "dlq.replay") || !strings.Contains(list, "dlq.purge") || !strings.Contains(list, "cli:") {
		t.Fatalf("audit list (%v):\n%s", err, list)
	}
	if out, err := iochub("audit", "verify", "--nats-url", opsURL(natsAddr)); err != nil || !strings.Contains(out, "3 records, the chain holds") {
		t.Fatalf("audit verify (%v):\n%s", err, out)
	}
	// An exported copy with its middle record edited does not verify.
	exported, err := iochub("audit", "export", "--nats-url", opsURL(natsAddr))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(exported), "\n")
	if len(lines) != 3 {
		t.Fatalf("exported %d records:\n%s", len(lines), exported)
	}
	lines[1] = strings.Replace(lines[1], `"via":"cli"`, `"via":"http"`, 1)
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := iochub("audit", "verify", "--file", file); err == nil || !strings.Contains(out, "record 2 was changed") {
		t.Fatalf("audit verify of an edited copy (%v):\n%s", err, out)
	}
}
