package main

// The hub under measurement: bin/iochub run as a child process.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/services/gateway"
)

type hubProc struct {
	cmd   *exec.Cmd
	base  string
	db    string
	store *chstore.Store
	dir   string
	peak  float64
	once  sync.Once
	chURL string
	debug string // the hub's pprof address, if profiling
	keep  bool   // leave dir and db after stop
}

// firstError keeps the first error reported by concurrent clients.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// cpuProfile saves the hub's CPU profile over the next d to file.
func (h *hubProc) cpuProfile(d time.Duration, file string) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", h.debug, int(d.Seconds())))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

const benchToken = "bench-producer-token-0123456789"

func startHub(o options) (*hubProc, error) { return startHubSpec(o, hubSpec{}) }

// hubSpec is what a phase asks of the hub beyond the options: a data
// directory and database to reuse (kept after stop), a NATS listener, the
// services, more YAML for the config.
type hubSpec struct {
	dir, db    string
	keep       bool   // leave the data directory and database after stop
	natsListen string // "" for none
	services   string // "" for the default
	yaml       string // appended to the config
}

func startHubSpec(o options, spec hubSpec) (*hubProc, error) {
	dir := spec.dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "iochub-bench-hub"); err != nil {
			return nil, err
		}
	}
	cfgPath := filepath.Join(dir, "iochub.yaml")
	cfg := fmt.Sprintf("pii_key: bench-pii-key-0123456789abcdef012345\ngateway:\n  max_body_bytes: 16777216\n  producers:\n    - name: bench\n      token_sha256: %q\n      sources: [\"*\"]\n      types: [\"vn.ioc.*\"]\n"+
		"iocapi:\n  readers:\n    - {name: bench, role: leader, token_sha256: %q}\n", httpedge.HashToken(benchToken), httpedge.HashToken("bench-reader"))
	if err := os.WriteFile(cfgPath, []byte(cfg+spec.yaml), 0o600); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	db := spec.db
	if db == "" {
		db = fmt.Sprintf("iochub_bench_%d", time.Now().UnixNano())
	}
	args := []string{"run", "--config", cfgPath, "--data-dir", dir, "--http-addr", addr, "--nats-listen", spec.natsListen,
		"--areas", o.areas,
		"--clickhouse-dsn", o.chServer + "/" + db, "--nats-sync", o.natsSync, "--log-level", "warn"}
	var debugAddr string
	if o.profile != "" {
		if debugAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		args = append(args, "--debug-addr", debugAddr)
	}
	if o.extraFlags != "" {
		args = append(args, strings.Fields(o.extraFlags)...)
	}
	if spec.services != "" {
		args = append(args, "--services", spec.services)
	}
	cmd := exec.Command(o.bin, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the bench
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", o.bin, err)
	}
	h := &hubProc{cmd: cmd, base: "http://" + addr, db: db, dir: dir, keep: spec.keep, chURL: o.chServer, debug: debugAddr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(h.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			h.stop()
			return nil, errors.New("hub not ready within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.store, err = chstore.Open(context.Background(), o.chServer+"/"+db)
	if err != nil {
		h.stop()
		return nil, err
	}
	go h.watchRSS()
	return h, nil
}

func (h *hubProc) watchRSS() {
	for h.cmd.ProcessState == nil {
		if v := vmHWM(h.cmd.Process.Pid); v > h.peak {
			h.peak = v
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func vmHWM(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuSeconds is the hub process's user+system CPU time so far.
func (h *hubProc) cpuSeconds() float64 { return procCPUSeconds(h.cmd.Process.Pid) }

// procCPUSeconds is a process's user+system CPU time so far.
func procCPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // after "pid (comm) "
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks (USER_HZ 100)
}

func openStore(ctx context.Context, server, db string) (*chstore.Store, error) {
	return chstore.Open(ctx, server+"/"+db)
}

func (h *hubProc) peakRSSMB() float64 {
	if v := vmHWM(h.cmd.Process.Pid); v > h.peak {
		h.peak = v
	}
	return h.peak
}

func (h *hubProc) stop() {
	h.once.Do(func() {
		_ = h.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = h.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = h.cmd.Process.Kill()
			<-done
		}
		if h.store != nil {
			if !h.keep {
				_ = h.store.DropDatabase(context.Background(), h.db)
			}
			h.store.Close()
		}
		if !h.keep {
			os.RemoveAll(h.dir)
		}
	})
}

// rows is the number of rows in all raw tables, read from system.parts: the
// rows of every committed (hence queryable) part, without scanning a table,
// so polling it often costs the server almost nothing.
func (h *hubProc) rows(ctx context.Context) (uint64, error) {
	var n uint64
	err := h.store.QueryRow(ctx, "SELECT toUInt64(sum(rows)) FROM system.parts WHERE database = ? AND active AND table LIKE '%_v1'", h.db).Scan(&n)
	return n, err
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 60 * time.Second}

// busyRefusals counts the requests the gateway refused whole with 503 and
// Retry-After (a hub busier than it can store) and the bench sent again,
// as a producer would.
var busyRefusals atomic.Int64

// post sends one batch; a 503 is sent again after its Retry-After, up to
// 30 times, as the README asks producers to.
func (h *hubProc) post(body []byte) error {
	for attempt := 1; ; attempt++ {
		req, _ := http.NewRequest(http.MethodPost, h.base+"/v1/events", bytes.NewReader(body))
		req.Header.Set("Content-Type", gateway.MediaBatch)
		req.Header.Set("Authorization", "Bearer "+benchToken)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusAccepted:
			return nil
		case resp.StatusCode == http.StatusServiceUnavailable && attempt < 30:
			busyRefusals.Add(1)
			wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			time.Sleep(time.Duration(max(wait, 1)) * time.Second)
			continue
		}
		return fmt.Errorf("gateway answered %d: %.300s", resp.StatusCode, raw)
	}
}
