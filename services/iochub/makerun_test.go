package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iochub/iochub/internal/polltest"
	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/services/iocapi"
)

// TestMakeRunServes runs the README's `make run` from the repository root,
// as a newcomer would, and follows what it prints: the gateway URL and the
// dev token take the README's example batch, and its events become rows;
// the dashboard URL and the reader token it prints serve the dashboard, and
// the demo data gives every KPI of the dashboard's default view a value.
func TestMakeRunServes(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is not installed")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dsn := chstoretest.NewDatabase(t) // clickhouse://host:port/db, dropped at the end
	db := dsn[strings.LastIndex(dsn, "/")+1:]
	addr := "127.0.0.1:" + freePort(t)
	cmd := exec.Command("make", "--no-print-directory", "run", "HTTP_ADDR="+addr, "DATA_DIR="+t.TempDir(), "CH_DATABASE="+db)
	cmd.Dir = root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})

	// What make run prints: the URL and the token, before the hub starts.
	var gatewayURL, token, dashboard, reader string
	sc := bufio.NewScanner(out)
	for sc.Scan() && (gatewayURL == "" || token == "" || dashboard == "" || reader == "") {
		line := strings.TrimSpace(sc.Text())
		t.Log("make run: " + line)
		if v, ok := strings.CutPrefix(line, "iochub gateway:"); ok {
			gatewayURL = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "dev producer token:"); ok {
			token = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "IOC dashboard:"); ok {
			dashboard = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "dev reader token:"); ok {
			reader = strings.Fields(v)[0]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	if want := "http://" + addr + "/v1/events"; gatewayURL != want || token == "" {
		t.Fatalf("make run printed gateway %q and token %q; want gateway %q and a token", gatewayURL, token, want)
	}

	example, err := os.ReadFile(filepath.Join(root, "schemas/health/examples/visit.v1.valid.json"))
	if err != nil {
		t.Fatal(err)
	}
	var status int
	waitFor(t, "make run to serve the gateway", 3*time.Minute, func() bool {
		req, _ := http.NewRequest(http.MethodPost, gatewayURL, strings.NewReader(string(example)))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		status = resp.StatusCode
		return true
	})
	if status != http.StatusAccepted {
		t.Fatalf("the README's example got %d, want 202", status)
	}
	hubUp := time.Now()
	s, err := chstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n uint64
	waitFor(t, "the example's rows", time.Minute, func() bool {
		err = s.QueryRow(context.Background(), "SELECT count() FROM "+s.Qualified("health_visit_v1")+
			" WHERE source = '/health/his/27-bvdk'").Scan(&n)
		return err == nil && n > 0
	})
	if n != 2 {
		t.Fatalf("health_visit_v1 has %d rows of the example, want 2", n)
	}

	// The simulated sector systems reach ClickHouse through the connectors:
	// every sector within a minute of the hub's start.
	for _, table := range tables {
		waitFor(t, table+" filled by its connector", time.Until(hubUp.Add(time.Minute)), func() bool {
			n, err := s.Count(context.Background(), table)
			return err == nil && n > 0
		})
	}
	t.Logf("all five sectors in ClickHouse %s after the hub answered", time.Since(hubUp).Round(time.Second))

	if want := "http://" + addr + "/#token=" + reader; dashboard != want || reader == "" {
		t.Fatalf("make run printed dashboard %q and reader token %q; want %q", dashboard, reader, want)
	}
	resp, err := http.Get(dashboard)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("dashboard: %v %v", resp, err)
	}
	resp.Body.Close()
	var cat struct{ KPIs []struct{ Name string } }
	if getJSON(t, "http://"+addr+"/v1/kpis", reader, &cat); len(cat.KPIs) < 15 {
		t.Fatalf("the reader token sees %d KPIs", len(cat.KPIs))
	}
	// The dashboard's default view: the last 7 days; open-now tiles over 90.
	polltest.Until(t, "demo data behind every KPI of the default view", 90*time.Second, func() error {
		var missing []string
		for _, k := range cat.KPIs {
			days := 7
			if k.Name == "publicservice.overdue_now" || k.Name == "feedback.reports_open" {
				days = 90
			}
			from := time.Now().AddDate(0, 0, -days).Format(time.RFC3339)
			var r iocapi.KPIResponse
			status := getJSON(t, "http://"+addr+"/v1/kpis/"+k.Name+"?from="+url.QueryEscape(from), reader, &r)
			// Schools not reported and overdue dossiers may rightly be 0.
			zeroOK := k.Name == "education.schools_not_reported" || k.Name == "publicservice.overdue_now"
			if status != http.StatusOK || r.Total == nil || (*r.Total == 0 && !zeroOK) {
				missing = append(missing, k.Name)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("no demo data behind %v", missing)
		}
		return nil
	})
}

// testWriter sends a child's stderr to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
