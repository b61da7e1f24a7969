package flagenv_test

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/iochub/iochub/pkg/flagenv"
)

func TestApply(t *testing.T) {
	t.Setenv("IOCHUB_NATS_URL", "nats://env:4222")
	t.Setenv("IOCHUB_HTTP_ADDR", "env:1")
	t.Setenv("IOCHUB_BATCH", "not-a-number")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	url := fs.String("nats-url", "", "")
	addr := fs.String("http-addr", "127.0.0.1:8080", "")
	if err := fs.Parse([]string{"--http-addr", "flag:2"}); err != nil {
		t.Fatal(err)
	}
	if err := flagenv.Apply(fs, "IOCHUB"); err != nil {
		t.Fatal(err)
	}
	if *url != "nats://env:4222" || *addr != "flag:2" {
		t.Fatalf("nats-url %q http-addr %q: env must fill, flag must win", *url, *addr)
	}
	fs2 := flag.NewFlagSet("y", flag.ContinueOnError)
	fs2.Int("batch", 1, "")
	_ = fs2.Parse(nil)
	if err := flagenv.Apply(fs2, "IOCHUB"); err == nil || !strings.Contains(err.Error(), "IOCHUB_BATCH") {
		t.Fatalf("err = %v, want one naming IOCHUB_BATCH", err)
	}
}
