package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
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
}
