package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantOut  []string // in stdout
		wantErr  string   // the one line on stderr
	}{
		{name: "help documents every flag and its variable", args: []string{"help"}, wantCode: 0,
			wantOut: []string{"--nats-url", "IOCHUB_NATS_URL", "-http-addr", "IOCHUB_HTTP_ADDR", "-nats-listen", "-data-dir", "-clickhouse-dsn", "IOCHUB_CLICKHOUSE_DSN", "-config", "-nats-sync", "-dedup-window"}},
		{name: "bad flag", args: []string{"run", "--bogus"}, wantCode: 2, wantErr: "flag provided but not defined: -bogus"},
		{name: "bad variable", args: []string{"run"}, env: map[string]string{"IOCHUB_ACK_WAIT": "soon"}, wantCode: 1, wantErr: "IOCHUB_ACK_WAIT"},
		{name: "missing key and producers", args: []string{"run", "--data-dir", "x"}, wantCode: 1, wantErr: "pii_key"},
		{name: "unknown service", args: []string{"run", "--services", "gateway,dashboard"}, wantCode: 1, wantErr: `unknown service "dashboard"`},
		{name: "bad sync", args: []string{"run", "--nats-sync", "sometimes"}, wantCode: 1, wantErr: "--nats-sync"},
		{name: "missing config file", args: []string{"run", "--config", "/nonexistent.yaml"}, wantCode: 1, wantErr: "config file"},
		{name: "unreachable clickhouse", args: []string{"run", "--services", "aggregator", "--nats-listen", "", "--http-addr", "127.0.0.1:0",
			"--clickhouse-dsn", "clickhouse://127.0.0.1:1/iochub"}, env: map[string]string{"IOCHUB_PII_KEY": "0123456789abcdef0123456789abcdef"},
			wantCode: 1, wantErr: "clickhouse at clickhouse://127.0.0.1:1/iochub"},
		{name: "unknown command", args: []string{"serve"}, wantCode: 2, wantErr: `unknown command "serve"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := tt.args
			if len(args) > 0 && args[0] == "run" && !contains(args, "--data-dir") {
				args = append(args, "--data-dir", t.TempDir())
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.wantCode, stderr.String())
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q", w)
				}
			}
			if tt.wantErr != "" {
				lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
				if len(lines) != 1 || !strings.Contains(lines[0], tt.wantErr) || strings.Contains(stderr.String(), "goroutine") {
					t.Fatalf("stderr is not one line naming %q:\n%s", tt.wantErr, stderr.String())
				}
			}
		})
	}
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}
