package education_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/iochub/iochub/internal/polltest"
	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/connectors/education"
)

// TestDropDirectoryReadsRegularFilesOnly (finding H3): a symbolic link in
// the drop directory (to a file the hub may read, such as its own config)
// and a named pipe are refused without being read: each is a dead letter
// with the reason and nothing of the target, moved into rejected/; the
// regular file beside them flows.
func TestDropDirectoryReadsRegularFilesOnly(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "iochub.yaml")
	if err := os.WriteFile(secret, []byte(header+"\npii_key: \"the-hubs-secret-key\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "a-link.csv")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "b-pipe.csv"), 0o600); err != nil {
		t.Fatal(err)
	}
	row := `TH-DB,"Trường Tiểu học Đình Bảng",27261,Tiểu học,23/11/2026,512,498,9,5`
	if err := os.WriteFile(filepath.Join(dir, "c-export.csv"), []byte(header+"\n"+row+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := natsjstest.Run(t)
	_, js := srv.Declared(t, natsjs.StreamLimits{})
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	ps, _ := pii.New([]byte("refuse-test-pii-key-0123456789abcdef"))
	r := &connector.Runner{Name: "education-csv", Source: &education.Source{Dir: dir, Poll: 20 * time.Millisecond}, Map: education.Map,
		Registry: reg, Pseudo: ps, JS: js, Log: zaptest.NewLogger(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	count := func(stream string) uint64 {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	polltest.True(t, "the export published and the link and pipe dead-lettered", 30*time.Second, func() bool {
		return count(natsjs.EventsStream) == 1 && count(natsjs.DLQStream) == 2
	})
	dlq, _ := js.Stream(ctx, natsjs.DLQStream)
	for seq, want := range map[uint64]string{1: "a-link.csv is a symbolic link", 2: "b-pipe.csv is not a regular file"} {
		m, err := dlq.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if reason := m.Header.Get(natsjs.HeaderDLQReason); !strings.Contains(reason, want) {
			t.Errorf("dead letter %d: reason %q, want %q", seq, reason, want)
		}
		if strings.Contains(string(m.Data), "secret") || len(m.Data) > 0 && strings.Contains(m.Header.Get(natsjs.HeaderDLQReason), "pii_key") {
			t.Errorf("dead letter %d holds the link's target: %q", seq, m.Data)
		}
	}
	for _, name := range []string{"a-link.csv", "b-pipe.csv"} {
		if _, err := os.Lstat(filepath.Join(dir, "rejected", name)); err != nil {
			t.Errorf("%s not moved into rejected/: %v", name, err)
		}
	}
	if b, _ := os.ReadFile(secret); !strings.Contains(string(b), "the-hubs-secret-key") {
		t.Error("the link's target was changed")
	}
}
