// Command iochub-bench measures the hub end to end on this machine and the
// raw speed of its parts in the same run: `make bench`.
//
//  1. JetStream alone: deduplicated async publishes, then a pull consumer
//     acking each message, on an embedded file-store server.
//  2. ClickHouse alone: batch inserts of raw rows into the raw tables through
//     chstore, then the same rows with clickhouse-client from Native files.
//  3. The hub (bin/iochub run as a child process, embedded JetStream),
//     freshness at a steady rate: small batches posted at a fixed rate; the
//     latency from the post to the rows being queryable, p50/p99.
//  4. The same hub, throughput: concurrent clients post batches of the
//     seven types' mix to the gateway; events/s accepted (202) and events/s
//     materialized (rows queryable).
//  5. Peak memory: the hub process's VmHWM.
//  6. Delivery: the throughput run on a hub without partner subscriptions
//     and on one with a push and a pull subscriber granted every event;
//     the aggregator's rate in both, each subscriber's.
//
// Results are printed as a table and written as JSON to -out.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
)

type options struct {
	bin            string
	out            string
	chServer       string
	events         int
	batch          int
	clients        int
	rate           int
	rateSecs       int
	rawEvents      int
	natsSync       string
	extraFlags     string
	profile        string
	profileSeconds int
	areas          string
	drainEvents    int
	phases         string
	kpiEvents      int
	kpiRepeats     int
	keepKPIData    bool
	deliveryEvents int
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
	flag.StringVar(&o.areas, "areas", "../../deploy/areas/bac-ninh.csv", "the area reference file the hub under test loads")
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
	flag.IntVar(&o.profileSeconds, "profile-seconds", 10, "length of the CPU profile, from the start of the throughput run")
	flag.StringVar(&o.phases, "phases", "pipeline,drain,monitor,kpi,delivery", "what to measure, comma-separated: pipeline (throughput, freshness), drain (a backlog published straight onto JetStream, then the aggregator alone), monitor (the pipeline's throughput again without the monitor), kpi (dashboard query latency), delivery (partner subscriptions beside the aggregator)")
	flag.IntVar(&o.deliveryEvents, "delivery-events", 100_000, "events of each delivery run")
	flag.IntVar(&o.drainEvents, "drain-events", 1_000_000, "events of the drain's backlog")
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
	pipeline, drain, delivery := strings.Contains(o.phases, "pipeline"), strings.Contains(o.phases, "drain"), strings.Contains(o.phases, "delivery")
	if !pipeline && !drain && !delivery {
		return nil
	}
	if pipeline {
		if err := benchPipeline(o, reg, &res); err != nil {
			return err
		}
	}
	if drain {
		fmt.Fprintf(os.Stderr, "== drain: %d events published straight onto JetStream, then the aggregator alone\n", o.drainEvents)
		d, err := benchDrain(o)
		if err != nil {
			return fmt.Errorf("drain: %w", err)
		}
		res.Params["drain_events"] = o.drainEvents
		res.Figures["drain_publish_per_s"] = d.publishPerS
		res.Figures["drain_materialized_per_s"] = d.perS
		res.Figures["drain_hub_cpu_us_per_event"] = d.hubCPUus
		res.Figures["drain_clickhouse_cpu_us_per_event"] = d.clickhouseCPUus
		res.Figures["drain_hub_peak_rss_mb"] = d.hubPeakRSSMB
	}
	if delivery {
		fmt.Fprintf(os.Stderr, "== delivery: %d events without partner subscriptions, then with a push and a pull subscriber\n", o.deliveryEvents)
		d, err := benchDelivery(o)
		if err != nil {
			return fmt.Errorf("delivery: %w", err)
		}
		res.Params["delivery_events"] = o.deliveryEvents
		res.Figures["delivery_aggregator_per_s_without_subscriptions"] = d.aggWithout
		res.Figures["delivery_aggregator_per_s_with_subscriptions"] = d.aggWith
		res.Figures["delivery_hub_cpu_us_per_event_without_subscriptions"] = d.cpuWithout
		res.Figures["delivery_hub_cpu_us_per_event_with_subscriptions"] = d.cpuWith
		res.Figures["delivery_push_per_s"] = d.push
		res.Figures["delivery_pull_per_s"] = d.pull
	}
	print(res)
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	return os.WriteFile(filepath.Join(o.out, "bench.json"), b, 0o644)
}

// benchPipeline measures the parts alone, then the hub end to end:
// freshness, throughput, and without the monitor.
func benchPipeline(o options, reg *schema.Registry, res *result) error {
	fmt.Fprintln(os.Stderr, "== JetStream alone")
	pub, cons, err := benchJetStream(o)
	if err != nil {
		return fmt.Errorf("jetstream alone: %w", err)
	}
	res.Figures["raw_jetstream_publish_per_s"], res.Figures["raw_jetstream_consume_per_s"] = pub, cons

	fmt.Fprintln(os.Stderr, "== ClickHouse alone")
	ins, client, err := benchClickHouse(o, reg)
	if err != nil {
		return fmt.Errorf("clickhouse alone: %w", err)
	}
	res.Figures["raw_clickhouse_insert_rows_per_s"] = ins
	res.Figures["raw_clickhouse_client_native_rows_per_s"] = client

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
	res.Figures["freshness_busy_refusals"] = float64(busyRefusals.Swap(0))
	fmt.Fprintln(os.Stderr, "== hub: throughput")
	cpu0 := h.cpuSeconds()
	accepted, materialized, err := benchThroughput(o, h)
	if err != nil {
		return fmt.Errorf("throughput: %w", err)
	}
	res.Figures["hub_accepted_per_s"], res.Figures["hub_materialized_per_s"] = accepted, materialized
	res.Figures["throughput_busy_refusals"] = float64(busyRefusals.Swap(0))
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

	return nil
}

func print(r result) {
	f := r.Figures
	fmt.Printf("\niochub bench — %s, %s cores, %s\n\n", r.Machine["cpu"], r.Machine["cores"], r.Date)
	fmt.Printf("| measure | hub | raw part, same machine, same run |\n|---|---|---|\n")
	if _, ok := f["hub_accepted_per_s"]; ok {
		printPipeline(f)
	}
	if n, ok := r.Params["drain_events"]; ok {
		fmt.Printf("| drain of %v events published straight onto JetStream (aggregator alone) | %.0f events/s | published at %.0f events/s; JetStream consume+ack alone: %.0f msg/s; ClickHouse insert alone: %.0f rows/s through chstore, %.0f rows/s with clickhouse-client from Native files |\n",
			n, f["drain_materialized_per_s"], f["drain_publish_per_s"], f["raw_jetstream_consume_per_s"], f["raw_clickhouse_insert_rows_per_s"], f["raw_clickhouse_client_native_rows_per_s"])
		fmt.Printf("| CPU per event of the drain | hub %.1f µs | ClickHouse server %.1f µs |\n", f["drain_hub_cpu_us_per_event"], f["drain_clickhouse_cpu_us_per_event"])
		fmt.Printf("| peak RSS of the hub while draining | %.0f MB | |\n", f["drain_hub_peak_rss_mb"])
	}
	if n, ok := r.Params["delivery_events"]; ok {
		fmt.Printf("| %v events to one push subscriber (batch 100), beside the aggregator | %.0f events/s | |\n", n, f["delivery_push_per_s"])
		fmt.Printf("| %v events to one pull subscriber (max 1000), beside the aggregator | %.0f events/s | |\n", n, f["delivery_pull_per_s"])
		fmt.Printf("| aggregator, events/s materialized: without / with the two subscriptions | %.0f / %.0f | hub CPU per event %.1f / %.1f µs |\n",
			f["delivery_aggregator_per_s_without_subscriptions"], f["delivery_aggregator_per_s_with_subscriptions"],
			f["delivery_hub_cpu_us_per_event_without_subscriptions"], f["delivery_hub_cpu_us_per_event_with_subscriptions"])
	}
	fmt.Println()
}

func printPipeline(f map[string]float64) {
	fmt.Printf("| events/s accepted by the gateway (202) | %.0f | JetStream dedup publish alone: %.0f msg/s |\n", f["hub_accepted_per_s"], f["raw_jetstream_publish_per_s"])
	fmt.Printf("| events/s materialized in ClickHouse | %.0f | JetStream consume+ack alone: %.0f msg/s; ClickHouse insert alone: %.0f rows/s through chstore, %.0f rows/s with clickhouse-client from Native files |\n",
		f["hub_materialized_per_s"], f["raw_jetstream_consume_per_s"], f["raw_clickhouse_insert_rows_per_s"], f["raw_clickhouse_client_native_rows_per_s"])
	fmt.Printf("| post → queryable p50 at %.0f events/s | %.0f ms | |\n", f["freshness_rate_achieved_per_s"], f["freshness_p50_ms"])
	fmt.Printf("| post → queryable p99 at %.0f events/s | %.0f ms | |\n", f["freshness_rate_achieved_per_s"], f["freshness_p99_ms"])
	fmt.Printf("| requests refused whole with 503 (hub busy) and sent again | freshness %.0f, throughput %.0f | |\n", f["freshness_busy_refusals"], f["throughput_busy_refusals"])
	fmt.Printf("| peak RSS of the hub process | %.0f MB | |\n", f["hub_peak_rss_mb"])
	fmt.Printf("| hub CPU per event (with the monitor) | %.1f µs | without the monitor: %.1f µs (%.0f events/s); the monitor's cost: %.1f%% |\n",
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
