package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
	"github.com/iochub/iochub/services/iochub/internal/hub"
	"github.com/iochub/iochub/sim"
)

// children are the processes this test started.
func children() []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) {
			out = append(out, pid)
		}
	}
	return out
}

// pidOf is the process among pids holding the loopback TCP socket whose
// local port is port (a client's side of a connection to this test), or 0.
func pidOf(port int, pids []int) int {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 {
				continue
			}
			local := fields[1] // hex address:hex port
			if i := strings.LastIndexByte(local, ':'); i > 0 {
				if p, err := strconv.ParseUint(local[i+1:], 16, 16); err == nil && int(p) == port {
					inodes["socket:["+fields[9]+"]"] = true
				}
			}
		}
		fh.Close()
	}
	for _, pid := range pids {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && inodes[l] {
				return pid
			}
		}
	}
	return 0
}

// TestOneConnectorProcessPollsAndAnotherTakesOver: two `iochub run
// --services connectors` processes with the same config against one NATS
// server. The dossier API is polled by one of them only; SIGKILLed, the
// other takes over within the lease's bound, from the checkpoint, and
// every dossier change is stored once: no gap, no duplicate.
func TestOneConnectorProcessPollsAndAnotherTakesOver(t *testing.T) {
	cl := natsjstest.RunCluster(t, 1)
	dsn := chstoretest.NewDatabase(t)
	startHubInProcess(t, dsn, func(c *hub.Config) {
		onCluster(t, cl, 1)(c)
		c.Services = "aggregator"
	})
	burnCPU(t)

	var (
		mu     sync.Mutex
		polled []int // the process of each poll, in order
	)
	api := &sim.DossierAPI{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, port, _ := net.SplitHostPort(r.RemoteAddr)
		p, _ := strconv.Atoi(port)
		who := pidOf(p, children()) // any process this test started, from its first poll
		mu.Lock()
		polled = append(polled, who)
		mu.Unlock()
		api.ServeHTTP(w, r)
	}))
	defer srv.Close()
	add := func(from, n int) {
		for i := from; i < from+n; i++ {
			at := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
			api.Add(map[string]any{"ma_ho_so": fmt.Sprintf("HS-%05d", i), "ma_thu_tuc": "1.001612", "co_quan": "SO-TP", "ma_dia_ban": "27256",
				"kenh_nop": "truc_tuyen", "trang_thai": "tiep_nhan", "ngay_tiep_nhan": at, "cap_nhat_luc": at})
		}
	}

	dir := t.TempDir()
	conf := filepath.Join(dir, "iochub.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("pii_key: %q\nconnectors:\n  publicservice:\n    url: %q\n    interval: 200ms\n", e2ePIIKey, srv.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "nats-password")
	if err := os.WriteFile(pw, []byte(natsjstest.ClusterPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	var procs []*exec.Cmd
	for range 2 {
		cmd, _ := clusterProcess(t, cl, dir, conf, pw, dsn, "connectors", "--lease-ttl", "2s")
		procs = append(procs, cmd)
	}

	store, err := chstore.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	stored := func(n uint64) func() bool {
		return func() bool {
			c, err := store.Count(t.Context(), "publicservice_dossier_v1")
			return err == nil && c >= n
		}
	}
	add(1, 100)
	waitFor(t, "the first 100 dossier changes stored", 2*time.Minute, stored(100))
	mu.Lock()
	leader := 0
	for _, p := range polled {
		if p != 0 && leader == 0 {
			leader = p
		}
		if p != 0 && p != leader {
			t.Errorf("both processes polled the dossier API before the leader was killed: %v", polled)
			break
		}
	}
	mu.Unlock()
	if leader == 0 {
		t.Fatal("no poll came from either connector process")
	}
	for _, c := range procs {
		if c.Process.Pid == leader {
			_ = c.Process.Signal(syscall.SIGKILL)
		}
	}
	killed := time.Now()
	add(101, 100)
	waitFor(t, "the next 100 stored through the other process", 2*time.Minute, stored(200))
	took := time.Since(killed)

	mu.Lock()
	defer mu.Unlock()
	seen := map[int]bool{}
	prev := 0
	for _, p := range polled {
		if p == 0 || p == prev {
			continue
		}
		if seen[p] {
			t.Errorf("the processes' polls interleave: %v", polled)
			break
		}
		seen[p], prev = true, p
	}
	if len(seen) != 2 {
		t.Errorf("polls came from %d processes, want the leader then the other", len(seen))
	}
	// Bound: the lease's TTL (2s), a take-over poll (TTL/4), the poll
	// interval, the aggregator: well under 30 s on a busy machine.
	if took > 30*time.Second {
		t.Errorf("the other process took %s to take over and catch up", took)
	}
	var n, distinct uint64
	if err := store.QueryRow(t.Context(), "SELECT count(), uniqExact(source, event_id) FROM "+store.Qualified("publicservice_dossier_v1")).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != 200 || distinct != 200 {
		t.Errorf("ClickHouse holds %d rows, %d distinct, want the 200 changes once each", n, distinct)
	}
}
