// Command iochub-bench measures the hub end to end on this machine and the
// raw speed of its parts in the same run: `make bench`.
//
//  1. JetStream alone: deduplicated async publishes, then a pull consumer
//     acking each message, on an embedded file-store server.
//  2. ClickHouse alone: batch inserts of raw rows into a raw table.
//  3. The hub (bin/iochub run as a child process, embedded JetStream),
//     freshness at a steady rate: small batches posted at a fixed rate; the
//     latency from the post to the rows being queryable, p50/p99.
//  4. The same hub, throughput: concurrent clients post batches of the
//     seven types' mix to the gateway; events/s accepted (202) and events/s
//     materialized (rows queryable).
//  5. Peak memory: the hub process's VmHWM.
//
// Results are printed as a table and written as JSON to -out.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/gateway"
)

type options struct {
	bin         string
	out         string
	chServer    string
	events      int
	batch       int
	clients     int
	rate        int
	rateSecs    int
	rawEvents   int
	natsSync    string
	extraFlags  string
	profile     string
	phases      string
	kpiEvents   int
	kpiRepeats  int
	keepKPIData bool
}

type result struct {
	Machine     map[string]string  `json:"machine"`
	Command     string             `json:"command"`
	Date        string             `json:"date"`
	Params      map[string]any     `json:"params"`
	Figures     map[string]float64 `json:"figures"`
	FiguresNote map[string]string  `json:"notes"`
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "../../bin/iochub", "the iochub binary to measure")
	flag.StringVar(&o.out, "out", "../../bench-results", "directory for bench.json")
	flag.StringVar(&o.chServer, "clickhouse", "clickhouse://127.0.0.1:9000", "ClickHouse server (a database iochub_bench_* is made and dropped)")
	flag.IntVar(&o.events, "events", 300_000, "events posted in the throughput run")
	flag.IntVar(&o.batch, "batch", 1000, "events per gateway batch in the throughput run")
	flag.IntVar(&o.clients, "clients", 4, "concurrent gateway clients in the throughput run")
	flag.IntVar(&o.rate, "rate", 10_000, "events/s of the freshness run")
	flag.IntVar(&o.rateSecs, "rate-seconds", 20, "length of the freshness run")
	flag.IntVar(&o.rawEvents, "raw-events", 200_000, "messages/rows of the JetStream-alone and ClickHouse-alone runs")
	flag.StringVar(&o.natsSync, "nats-sync", "2m", "--nats-sync of the hub under test")
	flag.StringVar(&o.extraFlags, "hub-flags", "", "extra flags for iochub run, space-separated")
	flag.StringVar(&o.profile, "profile", "", "if set, save the hub's CPU profile of the throughput run to this file (read it with go tool pprof)")
	flag.StringVar(&o.phases, "phases", "pipeline,monitor,kpi", "what to measure, comma-separated: pipeline (throughput, freshness), monitor (the pipeline's throughput again without the monitor), kpi (dashboard query latency)")
	flag.IntVar(&o.kpiEvents, "kpi-events", 10_000_000, "raw events behind the KPI query bench")
	flag.IntVar(&o.kpiRepeats, "kpi-repeats", 20, "timed runs of each dashboard query")
	flag.BoolVar(&o.keepKPIData, "keep-kpi-data", false, "keep the KPI bench database (iochub_bench_kpi_*) for a look afterwards")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "iochub-bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	res := result{Machine: machine(), Command: "make bench (" + strings.Join(os.Args, " ") + ")", Date: time.Now().UTC().Format(time.RFC3339),
		Params:  map[string]any{"events": o.events, "batch": o.batch, "clients": o.clients, "rate": o.rate, "rate_seconds": o.rateSecs, "raw_events": o.rawEvents, "nats_sync": o.natsSync},
		Figures: map[string]float64{}, FiguresNote: map[string]string{}}
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		return err
	}

	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	if strings.Contains(o.phases, "kpi") {
		fmt.Fprintf(os.Stderr, "== KPI queries over %d events\n", o.kpiEvents)
		figs, qs, err := benchKPIs(o, reg)
		if err != nil {
			return fmt.Errorf("kpi queries: %w", err)
		}
		if err := writeKPIResults(o, figs, qs); err != nil {
			return err
		}
	}
	if !strings.Contains(o.phases, "pipeline") {
		return nil
	}
	fmt.Fprintln(os.Stderr, "== JetStream alone")
	pub, cons, err := benchJetStream(o)
	if err != nil {
		return fmt.Errorf("jetstream alone: %w", err)
	}
	res.Figures["raw_jetstream_publish_per_s"], res.Figures["raw_jetstream_consume_per_s"] = pub, cons

	fmt.Fprintln(os.Stderr, "== ClickHouse alone")
	ins, err := benchClickHouse(o, reg)
	if err != nil {
		return fmt.Errorf("clickhouse alone: %w", err)
	}
	res.Figures["raw_clickhouse_insert_rows_per_s"] = ins

	h, err := startHub(o)
	if err != nil {
		return err
	}
	defer h.stop()
	// Freshness first, on a quiet server: the steady state the IOC lives in.
	// After the throughput run ClickHouse spends minutes merging its parts.
	fmt.Fprintln(os.Stderr, "== hub: freshness at a steady rate")
	p50, p99, achieved, err := benchFreshness(o, h)
	if err != nil {
		return fmt.Errorf("freshness: %w", err)
	}
	res.Figures["freshness_p50_ms"], res.Figures["freshness_p99_ms"], res.Figures["freshness_rate_achieved_per_s"] = p50, p99, achieved
	fmt.Fprintln(os.Stderr, "== hub: throughput")
	cpu0 := h.cpuSeconds()
	accepted, materialized, err := benchThroughput(o, h)
	if err != nil {
		return fmt.Errorf("throughput: %w", err)
	}
	res.Figures["hub_accepted_per_s"], res.Figures["hub_materialized_per_s"] = accepted, materialized
	res.Figures["hub_cpu_us_per_event"] = (h.cpuSeconds() - cpu0) / float64(o.events) * 1e6

	res.Figures["hub_peak_rss_mb"] = h.peakRSSMB()
	h.stop()

	if strings.Contains(o.phases, "monitor") {
		// The same throughput run on a hub without the monitor: what the
		// monitor costs, in the hub's CPU per event.
		fmt.Fprintln(os.Stderr, "== hub without the monitor: throughput")
		no := o
		no.extraFlags = strings.TrimSpace(o.extraFlags + " --services gateway,aggregator,iocapi")
		h2, err := startHub(no)
		if err != nil {
			return err
		}
		cpu0 := h2.cpuSeconds()
		_, materialized2, err := benchThroughput(no, h2)
		if err != nil {
			h2.stop()
			return fmt.Errorf("throughput without the monitor: %w", err)
		}
		res.Figures["hub_materialized_per_s_without_monitor"] = materialized2
		res.Figures["hub_cpu_us_per_event_without_monitor"] = (h2.cpuSeconds() - cpu0) / float64(o.events) * 1e6
		h2.stop()
		if w := res.Figures["hub_cpu_us_per_event_without_monitor"]; w > 0 {
			res.Figures["monitor_cost_pct"] = (res.Figures["hub_cpu_us_per_event"] - w) / w * 100
		}
	}

	print(res)
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	return os.WriteFile(filepath.Join(o.out, "bench.json"), b, 0o644)
}

func print(r result) {
	f := r.Figures
	fmt.Printf("\niochub bench — %s, %s cores, %s\n\n", r.Machine["cpu"], r.Machine["cores"], r.Date)
	fmt.Printf("| measure | hub | raw part, same machine, same run |\n|---|---|---|\n")
	fmt.Printf("| events/s accepted by the gateway (202) | %.0f | JetStream dedup publish alone: %.0f msg/s |\n", f["hub_accepted_per_s"], f["raw_jetstream_publish_per_s"])
	fmt.Printf("| events/s materialized in ClickHouse | %.0f | JetStream consume+ack alone: %.0f msg/s; ClickHouse insert alone: %.0f rows/s |\n",
		f["hub_materialized_per_s"], f["raw_jetstream_consume_per_s"], f["raw_clickhouse_insert_rows_per_s"])
	fmt.Printf("| post → queryable p50 at %.0f events/s | %.0f ms | |\n", f["freshness_rate_achieved_per_s"], f["freshness_p50_ms"])
	fmt.Printf("| post → queryable p99 at %.0f events/s | %.0f ms | |\n", f["freshness_rate_achieved_per_s"], f["freshness_p99_ms"])
	fmt.Printf("| peak RSS of the hub process | %.0f MB | |\n", f["hub_peak_rss_mb"])
	fmt.Printf("| hub CPU per event (with the monitor) | %.1f µs | without the monitor: %.1f µs (%.0f events/s); the monitor's cost: %.1f%% |\n\n",
		f["hub_cpu_us_per_event"], f["hub_cpu_us_per_event_without_monitor"], f["hub_materialized_per_s_without_monitor"], f["monitor_cost_pct"])
}

func machine() map[string]string {
	m := map[string]string{"cores": strconv.Itoa(runtime.NumCPU()), "go": runtime.Version(), "os": runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				m["cpu"] = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m["memory"] = strings.TrimSpace(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:"))
	}
	if out, err := exec.Command("clickhouse-client", "--query", "SELECT version()").Output(); err == nil {
		m["clickhouse"] = strings.TrimSpace(string(out))
	}
	return m
}

// messages makes n event messages of the mix, as the gateway would publish them.
func messages(n int, seed uint64) ([]event.Event, []*nats.Msg) {
	g := eventgen.New(seed, fmt.Sprintf("bench%d-%d", seed, time.Now().UnixNano()))
	evs := make([]event.Event, n)
	msgs := make([]*nats.Msg, n)
	for i := range evs {
		evs[i] = g.Next()
		body, _ := json.Marshal(evs[i])
		msgs[i], _ = natsjs.EventMsg(evs[i], body)
	}
	return evs, msgs
}

func benchJetStream(o options) (pubRate, consRate float64, err error) {
	dir, err := os.MkdirTemp("", "iochub-bench-js")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	interval, always := syncSetting(o.natsSync)
	srv, err := natsjs.RunEmbedded(natsjs.EmbeddedConfig{StoreDir: dir, SyncInterval: interval, SyncAlways: always})
	if err != nil {
		return 0, 0, err
	}
	defer srv.Shutdown()
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		return 0, 0, err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4000))
	ctx := context.Background()
	if err := natsjs.Declare(ctx, js, natsjs.StreamLimits{}); err != nil {
		return 0, 0, err
	}
	_, msgs := messages(o.rawEvents, 1)
	start := time.Now()
	for i := 0; i < len(msgs); i += 1000 {
		for _, out := range natsjs.PublishAll(ctx, js, msgs[i:min(i+1000, len(msgs))]) {
			if out.Err != nil {
				return 0, 0, out.Err
			}
		}
	}
	pubRate = float64(len(msgs)) / time.Since(start).Seconds()
	cons, err := js.Consumer(ctx, natsjs.EventsStream, natsjs.AggregatorConsumer)
	if err != nil {
		return 0, 0, err
	}
	start = time.Now()
	got := 0
	for got < len(msgs) {
		batch, err := cons.Fetch(5000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return 0, 0, err
		}
		for m := range batch.Messages() {
			_ = m.Ack()
			got++
		}
		if batch.Error() != nil && !errors.Is(batch.Error(), nats.ErrTimeout) {
			return 0, 0, batch.Error()
		}
	}
	consRate = float64(got) / time.Since(start).Seconds()
	return pubRate, consRate, nil
}

func syncSetting(s string) (time.Duration, bool) {
	if s == "always" {
		return 0, true
	}
	d, _ := time.ParseDuration(s)
	return d, false
}

func benchClickHouse(o options, reg *schema.Registry) (float64, error) {
	ctx := context.Background()
	db := fmt.Sprintf("iochub_bench_raw_%d", time.Now().UnixNano())
	s, err := chstore.Open(ctx, o.chServer+"/"+db)
	if err != nil {
		return 0, err
	}
	defer func() { _ = s.DropDatabase(ctx, db); s.Close() }()
	if err := s.Migrate(ctx, reg); err != nil {
		return 0, err
	}
	// The same mix of types as the hub writes, one insert per table per 5000 events.
	evs, _ := messages(o.rawEvents, 2)
	type tb struct {
		cols []string
		rows [][]any
	}
	var batches []map[string]*tb
	cur := map[string]*tb{}
	for i, e := range evs {
		ty, _ := reg.Lookup(e.Type)
		data, _ := schema.DecodeData(e.Data)
		row, err := chstore.Row(ty, e, uint64(i+1), time.Now(), data)
		if err != nil {
			return 0, err
		}
		t := cur[ty.Name.Table()]
		if t == nil {
			t = &tb{cols: chstore.Columns(ty)}
			cur[ty.Name.Table()] = t
		}
		t.rows = append(t.rows, row)
		if (i+1)%5000 == 0 {
			batches = append(batches, cur)
			cur = map[string]*tb{}
		}
	}
	batches = append(batches, cur)
	start := time.Now()
	for _, b := range batches {
		for name, t := range b {
			if err := s.Insert(ctx, name, t.cols, t.rows); err != nil {
				return 0, err
			}
		}
	}
	return float64(len(evs)) / time.Since(start).Seconds(), nil
}

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

func startHub(o options) (*hubProc, error) {
	dir, err := os.MkdirTemp("", "iochub-bench-hub")
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "iochub.yaml")
	cfg := fmt.Sprintf("pii_key: bench-pii-key-0123456789\ngateway:\n  max_body_bytes: 16777216\n  producers:\n    - name: bench\n      token_sha256: %q\n      sources: [\"*\"]\n      types: [\"vn.ioc.*\"]\n"+
		"iocapi:\n  readers:\n    - {name: bench, role: leader, token_sha256: %q}\n", httpedge.HashToken(benchToken), httpedge.HashToken("bench-reader"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	db := fmt.Sprintf("iochub_bench_%d", time.Now().UnixNano())
	root := filepath.Dir(filepath.Dir(o.bin)) // bin/iochub in the repository
	args := []string{"run", "--config", cfgPath, "--data-dir", dir, "--http-addr", addr, "--nats-listen", "",
		"--areas", filepath.Join(root, "deploy", "areas", "bac-ninh.csv"),
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
	cmd := exec.Command(o.bin, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the bench
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", o.bin, err)
	}
	h := &hubProc{cmd: cmd, base: "http://" + addr, db: db, dir: dir, chURL: o.chServer, debug: debugAddr}
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
func (h *hubProc) cpuSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", h.cmd.Process.Pid))
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
			_ = h.store.DropDatabase(context.Background(), h.db)
			h.store.Close()
		}
		os.RemoveAll(h.dir)
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

func (h *hubProc) post(body []byte) error {
	req, _ := http.NewRequest(http.MethodPost, h.base+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", gateway.MediaBatch)
	req.Header.Set("Authorization", "Bearer "+benchToken)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("gateway answered %d: %.300s", resp.StatusCode, raw)
	}
	return nil
}

func bodies(n, batch int, seed uint64) [][]byte {
	evs, _ := messages(n, seed)
	var out [][]byte
	for i := 0; i < len(evs); i += batch {
		b, _ := json.Marshal(evs[i:min(i+batch, len(evs))])
		out = append(out, b)
	}
	return out
}

func benchThroughput(o options, h *hubProc) (accepted, materialized float64, err error) {
	ctx := context.Background()
	base, err := h.rows(ctx)
	if err != nil {
		return 0, 0, err
	}
	bs := bodies(o.events, o.batch, 3)
	if o.profile != "" {
		go func() {
			if err := h.cpuProfile(10*time.Second, o.profile); err != nil {
				fmt.Fprintln(os.Stderr, "iochub-bench: profile:", err)
			}
		}()
	}
	var next atomic.Int64
	var firstErr firstError
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < o.clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bs) {
					return
				}
				if err := h.post(bs[i]); err != nil {
					firstErr.set(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := firstErr.get(); e != nil {
		return 0, 0, e
	}
	accepted = float64(o.events) / time.Since(start).Seconds()
	for {
		n, err := h.rows(ctx)
		if err != nil {
			return 0, 0, err
		}
		if n-base >= uint64(o.events) {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return 0, 0, fmt.Errorf("only %d of %d events materialized after 10 minutes", n-base, o.events)
		}
		time.Sleep(250 * time.Millisecond)
	}
	materialized = float64(o.events) / time.Since(start).Seconds()
	return accepted, materialized, nil
}

// benchFreshness posts batches of rate/100 events every 10ms (each post in its
// own goroutine, so a slow answer does not lower the rate) and records, for
// batch i, the time from its post to the first poll (every 50ms, as each poll is a query that costs the server CPU the hub would otherwise get; latencies are thus up to 50ms pessimistic) at which the
// raw tables hold (i+1)·batch rows more than before the run.
func benchFreshness(o options, h *hubProc) (p50, p99, achieved float64, err error) {
	ctx := context.Background()
	base, err := h.rows(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	per := max(1, o.rate/100)
	nb := o.rateSecs * 100
	bs := bodies(per*nb, per, 4)
	sent := make([]time.Time, len(bs))
	var mu sync.Mutex
	sentCount := 0
	var lat []float64
	done := make(chan error, 1)
	go func() { // the poller
		seen := 0
		for seen < len(bs) {
			n, err := h.rows(ctx)
			if err != nil {
				done <- err
				return
			}
			now := time.Now()
			visible := int((n - base) / uint64(per))
			mu.Lock()
			for seen < visible && seen < sentCount {
				lat = append(lat, float64(now.Sub(sent[seen]).Microseconds())/1000)
				seen++
			}
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
		done <- nil
	}()
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	var posts sync.WaitGroup
	var postErr firstError
	for i, b := range bs {
		<-tick.C
		mu.Lock()
		sent[i] = time.Now()
		sentCount = i + 1
		mu.Unlock()
		// Each tick's batch is posted at once, whatever the previous ones are
		// doing: the rate stays the one asked for, as with many producers.
		posts.Add(1)
		go func() {
			defer posts.Done()
			if err := h.post(b); err != nil {
				postErr.set(err)
			}
		}()
		if e := postErr.get(); e != nil {
			return 0, 0, 0, e
		}
	}
	tick.Stop()
	posts.Wait()
	if e := postErr.get(); e != nil {
		return 0, 0, 0, e
	}
	achieved = float64(per*nb) / time.Since(start).Seconds()
	select {
	case err := <-done:
		if err != nil {
			return 0, 0, 0, err
		}
	case <-time.After(2 * time.Minute):
		return 0, 0, 0, errors.New("rows did not all become queryable within 2 minutes")
	}
	sort.Float64s(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], achieved, nil
}
