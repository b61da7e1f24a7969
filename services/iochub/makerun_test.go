package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
)

// TestMakeRunServes runs the README's `make run` from the repository root,
// as a newcomer would, and follows what it prints: the gateway URL and the
// dev token take the README's example batch, and its events become rows.
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
	var url, token string
	sc := bufio.NewScanner(out)
	for sc.Scan() && (url == "" || token == "") {
		line := strings.TrimSpace(sc.Text())
		t.Log("make run: " + line)
		if v, ok := strings.CutPrefix(line, "iochub gateway:"); ok {
			url = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "dev producer token:"); ok {
			token = strings.TrimSpace(v)
		}
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	if want := "http://" + addr + "/v1/events"; url != want || token == "" {
		t.Fatalf("make run printed gateway %q and token %q; want gateway %q and a token", url, token, want)
	}

	example, err := os.ReadFile(filepath.Join(root, "schemas/health/examples/visit.v1.valid.json"))
	if err != nil {
		t.Fatal(err)
	}
	var status int
	waitFor(t, "make run to serve the gateway", 3*time.Minute, func() bool {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(string(example)))
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
	s, err := chstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n uint64
	waitFor(t, "the example's rows", time.Minute, func() bool {
		n, err = s.Count(context.Background(), "health_visit_v1")
		return err == nil && n > 0
	})
	if n != 2 {
		t.Fatalf("health_visit_v1 has %d rows, want the example's 2", n)
	}
}

// testWriter sends a child's stderr to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
