package hub

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/iochub/iochub/kpis"
	"github.com/iochub/iochub/pkg/admit"
	"github.com/iochub/iochub/pkg/alertlog"
	"github.com/iochub/iochub/pkg/area"
	"github.com/iochub/iochub/pkg/audit"
	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/kpi"
	"github.com/iochub/iochub/pkg/lease"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/aggregator"
	"github.com/iochub/iochub/services/catalogue"
	"github.com/iochub/iochub/services/connectors"
	"github.com/iochub/iochub/services/gateway"
	"github.com/iochub/iochub/services/iocapi"
	"github.com/iochub/iochub/services/monitor"
	"github.com/iochub/iochub/services/sharing"
)

// Hub is a started iochub process: its infrastructure, and what each built
// service mounts on the HTTP listener and runs until the process stops.
type Hub struct {
	cfg      Config
	log      *zap.Logger
	srv      *natsjs.Embedded // embedded NATS, or nil
	nc       *nats.Conn
	js       jetstream.JetStream
	store    *chstore.Store // nil when neither the aggregator nor iocapi runs here
	catalog  *kpi.Catalog   // nil when neither the aggregator nor iocapi runs here
	reg      *schema.Registry
	pseudo   *pii.Pseudonymizer
	listener net.Listener
	debug    net.Listener // --debug-addr, or nil
	agg      *aggregator.Aggregator
	sharing  *sharing.Service // nil when the sharing service does not run here
	leases   *lease.Leases    // openLeases: the connectors' pollers, the aggregators' table locks

	metrics *prometheus.Registry // this process's /metrics

	mounts []func(httpedge.Router)           // each service's routes
	routes *httpedge.Routes                  // all of them, mounted
	tasks  []func(ctx context.Context) error // each service's work; returns when ctx is done
}

// Start opens the infrastructure, then builds each service of --services.
// Errors are one line each: what could not be reached, and where.
func Start(ctx context.Context, cfg Config, log *zap.Logger) (_ *Hub, err error) {
	h := &Hub{cfg: cfg, log: log, metrics: prometheus.NewRegistry()}
	h.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	defer func() {
		if err != nil {
			h.close()
		}
	}()
	dctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := h.open(dctx); err != nil {
		return nil, err
	}
	// The aggregator before the monitor, which reads its counters.
	for _, b := range []struct {
		service string
		build   func(context.Context) error
	}{
		{ServiceAggregator, h.buildAggregator},
		{ServiceGateway, h.buildGateway},
		{ServiceConnectors, h.buildConnectors},
		{ServiceIOCAPI, h.buildIOCAPI},
		{ServiceSharing, h.buildSharing}, // before the monitor, which shows its subscriptions
		{ServiceMonitor, h.buildMonitor},
	} {
		if cfg.Runs(b.service) {
			if err := b.build(dctx); err != nil {
				return nil, err
			}
		}
	}
	if cfg.Demo {
		h.tasks = append(h.tasks, func(ctx context.Context) error { h.runDemo(ctx); return nil })
	}
	if (cfg.Runs(ServiceMonitor) || cfg.Runs(ServiceSharing)) && h.pseudo != nil {
		h.tasks = append(h.tasks, h.signAuditRoots)
	}
	if err := h.mount(); err != nil {
		return nil, err
	}
	if err := h.listen(); err != nil {
		return nil, err
	}
	return h, nil
}

// listen opens the HTTP listener and the debug one, so that an address in
// use is a start error and both answer once Start returns.
func (h *Hub) listen() (err error) {
	if h.listener, err = httpedge.Listen(h.cfg.HTTPAddr, h.cfg.File.HTTP); err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	if h.cfg.DebugAddr != "" {
		if h.debug, err = httpedge.Listen(h.cfg.DebugAddr, h.cfg.File.HTTP); err != nil {
			return fmt.Errorf("--debug-addr: %w", err)
		}
	}
	return nil
}

// open opens what the services share: the schemas, the personal-data key,
// ClickHouse and the KPI catalogue where a service needs them (first: when
// ClickHouse is unreachable, that is the one line the operator sees), and
// JetStream with its streams.
func (h *Hub) open(ctx context.Context) (err error) {
	cfg := h.cfg
	if h.reg, err = schema.Load(schemas.FS); err != nil {
		return err
	}
	keyID := cfg.File.PIIKeyID
	if keyID == "" {
		keyID = pii.DefaultKeyID
	}
	if h.pseudo, err = pii.NewWithID([]byte(cfg.PIIKey), keyID); err != nil {
		return err
	}
	if cfg.Runs(ServiceAggregator) || cfg.Runs(ServiceIOCAPI) {
		if h.catalog, err = loadCatalog(cfg.KPIDir); err != nil {
			return err
		}
		var opts []chstore.Option
		if cfg.ClickHouseCluster != "" {
			opts = append(opts, chstore.WithCluster(cfg.ClickHouseCluster))
		}
		if h.store, err = chstore.Open(ctx, cfg.ClickHouseDSN, opts...); err != nil {
			return fmt.Errorf("clickhouse at %s: %w (start one with deploy/clickhouse/ensure.sh, or `make run`)", cfg.ClickHouseDSN, err)
		}
	}
	opts := []nats.Option{nats.Name("iochub"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	if cfg.NATS.Embedded() {
		ecfg, err := cfg.NATS.EmbeddedConfig()
		if err != nil {
			return err
		}
		if h.srv, err = natsjs.RunEmbedded(ecfg); err != nil {
			return err
		}
		opts = append(opts, h.srv.HubOptions()...)
		h.log.Info("embedded JetStream started", zap.String("store", ecfg.StoreDir), zap.String("listen", ecfg.Listen),
			zap.Int("users", len(ecfg.Access.Users)), zap.Bool("tls", ecfg.Access.TLS.On()))
	} else {
		auth, err := cfg.NATS.Auth.Options()
		if err != nil {
			return err
		}
		opts = append(opts, auth...)
	}
	if h.nc, err = nats.Connect(cfg.NATS.URL, opts...); err != nil {
		return fmt.Errorf("nats %s: %w", natsjs.DisplayURL(cfg.NATS.URL), err)
	}
	if h.js, err = natsjs.NewJetStream(h.nc, natsjs.WithReplicas(cfg.streamLimits().Replicas)); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if err := natsjs.Declare(ctx, h.js, cfg.streamLimits()); err != nil {
		return fmt.Errorf("jetstream at %q: %w", natsjs.DisplayURL(cfg.NATS.URL), err)
	}
	return nil
}

// buildAggregator migrates the raw tables and the rollups over them, then
// runs the aggregator once new rollups are filled, and the compaction.
func (h *Hub) buildAggregator(ctx context.Context) error {
	// Several aggregator processes migrate one at a time, and the one that
	// makes a rollup holds its raw table's lock until the rollup is
	// filled, so no other writes a row the fill would count again.
	leases, err := h.openLeases(ctx)
	if err != nil {
		return err
	}
	migrating, err := leases.Hold(ctx, "aggregator-migrate")
	if err != nil {
		return fmt.Errorf("clickhouse migrations: %w", err)
	}
	defer migrating()
	if err := h.store.Migrate(ctx, h.reg); err != nil {
		return fmt.Errorf("clickhouse migrations: %w", err)
	}
	toFill, err := h.catalog.Migrate(ctx, h.store)
	if err != nil {
		return fmt.Errorf("clickhouse rollups: %w", err)
	}
	var fills []func()
	held := map[string]bool{}
	for _, name := range toFill {
		for _, r := range h.catalog.Rollups {
			if r.Table != name || held[r.Source] {
				continue
			}
			release, err := leases.Hold(ctx, "aggregator."+r.Source)
			if err != nil {
				for _, f := range fills {
					f()
				}
				return fmt.Errorf("clickhouse rollups: %w", err)
			}
			held[r.Source] = true
			fills = append(fills, release)
		}
	}
	var once sync.Once
	releaseFills := func() {
		once.Do(func() {
			for _, release := range fills {
				release()
			}
		})
	}
	acfg := h.cfg.Aggregator
	acfg.AckWait = h.cfg.Streams.AckWait
	acfg.Locks = leases // several aggregators write a table one at a time (decision 0013)
	acfg.Rollups = rollupRepair{h.catalog, h.store}
	h.agg = aggregator.New(acfg, h.js, h.store, h.reg, h.pseudo, h.log)
	h.tasks = append(h.tasks, func(ctx context.Context) error {
		// New rollups are filled first, outside the start deadline; the
		// aggregator writes only once they are complete (events wait in
		// IOC_EVENTS meanwhile), and other aggregators wait for the fill
		// of a rollup to write its raw table.
		defer releaseFills()
		err := h.catalog.Fill(ctx, h.store, toFill, h.log)
		releaseFills()
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped during the fill: the next start fills again
			}
			return fmt.Errorf("clickhouse rollups: %w", err)
		}
		return h.agg.Run(ctx)
	})
	if h.cfg.CompactEvery > 0 {
		h.tasks = append(h.tasks, func(ctx context.Context) error { h.compactRollups(ctx); return nil })
	}
	return nil
}

// buildGateway mounts POST /v1/events and the catalogue (GET /v1/schemas).
func (h *Hub) buildGateway(context.Context) error {
	gw := gateway.New(h.cfg.File.Gateway, h.reg, gateway.JetStreamPublisher{JS: h.js}, h.pseudo, h.log)
	if err := gw.RegisterMetrics(h.metrics); err != nil {
		return err
	}
	// What it took and refused of each producer, to the monitor of
	// whichever process runs it.
	h.tasks = append(h.tasks, func(ctx context.Context) error { return gw.Report(ctx, h.nc, monitorInterval(h.cfg.File.Monitor)) })
	// The catalogue of event types goes with the gateway: producers and
	// partner agencies read what the hub takes.
	h.mounts = append(h.mounts, gw.Register, catalogue.New(h.reg).Register)
	return nil
}

// buildConnectors declares what the sector systems send to, runs a runner
// per configured system and mounts the webhooks.
func (h *Hub) buildConnectors(ctx context.Context) error {
	if err := h.cfg.File.Connectors.Prepare(ctx, h.js); err != nil {
		return err
	}
	set := connectors.Build(h.cfg.File.Connectors, connectors.Deps{NC: h.nc, JS: h.js, Registry: h.reg, Pseudo: h.pseudo, Log: h.log})
	h.mounts = append(h.mounts, func(mux httpedge.Router) {
		for path, wh := range set.Webhooks {
			mux.Handle("POST "+path, wh)
		}
	})
	if len(set.Runners) == 0 {
		return nil
	}
	// Each poller runs in one process at a time among those running the
	// connectors with this config: the holder of its lease.
	leases, err := h.openLeases(ctx)
	if err != nil {
		return err
	}
	for _, r := range set.Runners {
		h.tasks = append(h.tasks, func(ctx context.Context) error { return leases.Run(ctx, "connector."+r.Name, r.Run) })
	}
	return nil
}

// buildIOCAPI mounts the KPI API and the dashboard.
func (h *Hub) buildIOCAPI(context.Context) error {
	areas, err := area.Load(h.cfg.AreasFile)
	if err != nil {
		return fmt.Errorf("--areas: %w", err)
	}
	var opts []iocapi.Option
	shapes, err := area.LoadShapes(area.ShapesPath(h.cfg.AreasFile), areas)
	switch {
	case errors.Is(err, area.ErrNoShapes):
		h.log.Info("no area shapes beside --areas: the dashboard's map is a tile grid of the units", zap.String("file", area.ShapesPath(h.cfg.AreasFile)))
	case err != nil:
		return fmt.Errorf("--areas: %w", err)
	default:
		opts = append(opts, iocapi.WithShapes(shapes))
	}
	// The banner: the monitor's alerts as it records them, from whichever
	// process runs it.
	opts = append(opts, iocapi.WithAlerts(func(ctx context.Context) ([]alertlog.Event, error) {
		return alertlog.Read(ctx, h.js, monitor.MaxHistory)
	}))
	engine := &kpi.Engine{Catalog: h.catalog, Store: h.store, Location: h.cfg.File.IOCAPI.Timezone.Loc()}
	api, err := iocapi.New(h.cfg.File.IOCAPI, h.catalog, engine, areas, h.log, opts...)
	if err != nil {
		return err
	}
	h.mounts = append(h.mounts, api.Register)
	return nil
}

// AuditRootLabel derives the hub's Ed25519 key for the audit log's signed
// roots from its personal-data key (pii.Pseudonymizer.Derive).
const AuditRootLabel = "audit-root-v1"

// signAuditRoots signs the audit log's head once a UTC day, at the first
// check of the day (every 10 minutes): a root record under an Ed25519 key
// derived from the hub's key, so a log rebuilt without the key is found
// (iochub audit verify --public-key).
func (h *Hub) signAuditRoots(ctx context.Context) error {
	key := ed25519.NewKeyFromSeed(h.pseudo.Derive(AuditRootLabel))
	h.log.Info("the audit log's daily roots are signed", zap.String("public_key", base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))))
	tick := time.NewTicker(10 * time.Minute)
	defer tick.Stop()
	for {
		day := time.Now().UTC().Format(time.DateOnly)
		kv, err := h.js.KeyValue(ctx, natsjs.HubBucket)
		if err == nil {
			if e, gerr := kv.Get(ctx, "audit-root-day"); gerr != nil || string(e.Value()) != day {
				if _, err = (audit.Log{JS: h.js}).AppendRoot(ctx, key, day); err == nil {
					_, err = kv.Put(ctx, "audit-root-day", []byte(day))
				}
			}
		}
		if err != nil && ctx.Err() == nil {
			h.log.Warn("audit log root not signed; will try again", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// startTimeout bounds the start: JetStream, ClickHouse, the migrations.
const startTimeout = 15 * time.Second

// openLeases opens the process's leases, once (connectors' pollers,
// aggregators' table locks).
func (h *Hub) openLeases(ctx context.Context) (*lease.Leases, error) {
	if h.leases != nil {
		return h.leases, nil
	}
	l, err := lease.Open(ctx, h.js, h.cfg.LeaseTTL, h.log)
	if err != nil {
		return nil, err
	}
	h.leases = l
	return l, nil
}

// buildSharing serves the agencies' subscriptions (services/sharing).
func (h *Hub) buildSharing(ctx context.Context) error {
	areas, err := area.Load(h.cfg.AreasFile)
	if err != nil {
		return fmt.Errorf("--areas: %w", err)
	}
	svc, err := sharing.New(ctx, h.cfg.File.Sharing, h.js, h.reg, areas, admit.New(h.reg, h.pseudo, 0), h.log.With(zap.String("component", "sharing")))
	if err != nil {
		return err
	}
	h.mounts = append(h.mounts, svc.Register)
	h.tasks = append(h.tasks, svc.Run) // push delivery
	h.sharing = svc
	return nil
}

// buildMonitor watches the streams, the consumers and ClickHouse, with an
// in-process aggregator's counters when there is one.
func (h *Hub) buildMonitor(context.Context) error {
	mcfg := h.cfg.File.Monitor
	mcfg.Location = h.cfg.File.IOCAPI.Timezone.Location
	d := monitor.Deps{NC: h.nc, JS: h.js, Log: h.log.With(zap.String("component", "monitor"))}
	if h.srv != nil {
		mcfg.StoreDir = h.cfg.NATS.StoreDir()
	}
	if h.store != nil {
		d.Store = h.store
	}
	if agg := h.agg; agg != nil { // count sources from the aggregator, not from every event again
		d.Sources = func() map[string]monitor.SourceTotal {
			out := map[string]monitor.SourceTotal{}
			for src, c := range agg.SourceCounts() {
				out[src] = monitor.SourceTotal{Events: c.Events, Last: c.Last}
			}
			return out
		}
		d.StoreStats = func() monitor.StoreCounters {
			return monitor.StoreCounters{RowsInserted: agg.Stats.Inserted.Load(), InsertErrors: agg.Stats.Retries.Load(),
				Batches: agg.Stats.Batches.Load(), LastBatch: time.Duration(agg.Stats.LastBatchNs.Load())}
		}
		d.TableSizes = func(ctx context.Context) (map[string]monitor.TableSize, error) {
			sizes, err := h.store.TableSizes(ctx)
			out := map[string]monitor.TableSize{}
			for t, s := range sizes {
				out[t] = monitor.TableSize{Rows: s.Rows, Bytes: s.Bytes}
			}
			return out, err
		}
	}
	if svc := h.sharing; svc != nil {
		d.Subscriptions = func(ctx context.Context) ([]monitor.SubscriptionStat, error) {
			sts, err := svc.Statuses(ctx)
			out := make([]monitor.SubscriptionStat, len(sts))
			for i, st := range sts {
				out[i] = monitor.SubscriptionStat{Name: st.Name, Agency: st.Agency, Mode: st.Mode, Paused: st.Paused, Delivered: st.Delivered,
					LastError: st.LastError, Retries: st.Retries, DeadLettered: st.DeadLettered}
				if !st.LastDelivery.IsZero() {
					out[i].LastDelivery = &st.LastDelivery
				}
			}
			return out, err
		}
	}
	mon := monitor.New(mcfg, d)
	if err := h.metrics.Register(mon); err != nil {
		return err
	}
	adm := admit.New(h.reg, h.pseudo, 0)
	h.mounts = append(h.mounts, func(mux httpedge.Router) { mon.Register(mux, adm) })
	h.tasks = append(h.tasks, mon.Run)
	return nil
}

// monitorInterval is how often the monitor samples, and the gateway
// reports to it.
func monitorInterval(c monitor.Config) time.Duration {
	if c.Interval > 0 {
		return c.Interval
	}
	return monitor.DefaultConfig().Interval
}

// compactRollups compacts the entity rollups every --rollup-compact-interval
// until ctx is done. A failure is logged and tried again next time: the
// KPIs stay exact without it, only slower.
func (h *Hub) compactRollups(ctx context.Context) {
	t := time.NewTicker(h.cfg.CompactEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		n, err := h.catalog.Compact(ctx, h.store)
		if err != nil {
			h.log.Warn("rollup compaction failed; KPIs stay exact, queries slower", zap.Error(err))
			continue
		}
		if n > 0 {
			h.log.Info("rollups compacted", zap.Int("partitions", n), zap.Duration("took", time.Since(start)))
		}
	}
}

// loadCatalog reads the KPI definitions and rollups from dir, or the
// built-in ones when dir is empty.
func loadCatalog(dir string) (*kpi.Catalog, error) {
	fsys := fs.FS(kpis.FS)
	if dir != "" {
		fsys = os.DirFS(dir)
	}
	c, err := kpi.Load(fsys)
	if err != nil && dir != "" {
		return nil, fmt.Errorf("--kpi-dir %s: %w", dir, err)
	}
	return c, err
}

// mount puts every service's routes, the probes and the documents that
// describe them on one mux. A route the OpenAPI table does not describe is
// a start error: /openapi.json lists every route the process serves.
func (h *Hub) mount() error {
	h.routes = &httpedge.Routes{Mux: http.NewServeMux()}
	for _, mount := range h.mounts {
		mount(h.routes)
	}
	h.routes.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpedge.WriteJSON(w, http.StatusOK, map[string]string{"status": "up"})
	})
	h.routes.HandleFunc("GET /readyz", h.ready)
	h.routes.HandleFunc("GET /metrics", monitor.MetricsHandler(h.cfg.File.Monitor.Admins, h.metrics))
	info := catalogue.Info{Version: version(), NATS: h.natsHost()}
	openapi, err := catalogue.OpenAPI(append(h.routes.Patterns(), catalogue.DocumentRoutes...), info)
	if err != nil {
		return err
	}
	asyncapi, err := catalogue.New(h.reg).AsyncAPI(info)
	if err != nil {
		return err
	}
	catalogue.Documents{OpenAPI: openapi, AsyncAPI: asyncapi}.Register(h.routes)
	return nil
}

// Routes lists the patterns of every route the process serves.
func (h *Hub) Routes() []string { return h.routes.Patterns() }

// natsHost is where producers reach NATS: the cluster's first URL, or the
// embedded server's client listener ("" when it has none).
func (h *Hub) natsHost() string {
	if h.cfg.NATS.URL == "" {
		return h.cfg.NATS.Listen
	}
	first, _, _ := strings.Cut(h.cfg.NATS.URL, ",")
	if u, err := url.Parse(strings.TrimSpace(first)); err == nil && u.Host != "" {
		return u.Host
	}
	return ""
}

// buildVersion is set by `make build` (git describe).
var buildVersion string

// version is the hub's version: what `make build` stamped, else the commit
// Go recorded, else "dev".
func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if dirty {
		return rev[:min(12, len(rev))] + "-modified"
	}
	return rev[:min(12, len(rev))]
}

// HTTPAddr is the address the HTTP server listens on.
func (h *Hub) HTTPAddr() string { return h.listener.Addr().String() }

// Run serves until ctx is done, then shuts down in order: stop taking
// requests, let the aggregator write and ack what it holds, close NATS,
// stop the embedded server.
func (h *Hub) Run(ctx context.Context) error {
	defer h.close()
	hs := httpedge.NewServer(httpedge.Instrument(h.routes.Mux, h.metrics), h.cfg.File.HTTP)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { // exits when the server is shut down below
		if err := hs.Serve(h.listener); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error { // exits on ctx done (or another goroutine's error)
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	})
	for _, task := range h.tasks {
		g.Go(func() error { return task(gctx) }) // each exits on ctx done
	}
	if h.debug != nil {
		dbg := httpedge.NewServer(debugMux(), h.cfg.File.HTTP)
		g.Go(func() error { // exits when ctx is done
			go func() { <-gctx.Done(); _ = dbg.Close() }()
			if err := dbg.Serve(h.debug); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("debug http: %w", err)
			}
			return nil
		})
	}
	h.log.Info("iochub running", zap.String("http", "http://"+h.HTTPAddr()), zap.Strings("services", h.cfg.ServiceList()))
	return g.Wait()
}

func (h *Hub) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	if _, err := h.js.AccountInfo(ctx); err != nil {
		checks["jetstream"], ok = err.Error(), false
	} else {
		checks["jetstream"] = "ok"
		for _, name := range []string{natsjs.EventsStream, natsjs.DLQStream} { // a stream deleted under the hub is not ready
			if _, err := h.js.Stream(ctx, name); err != nil {
				checks["jetstream"], ok = fmt.Sprintf("stream %s: %v", name, err), false
			}
		}
	}
	if h.store != nil {
		if err := h.store.Ping(ctx); err != nil {
			checks["clickhouse"], ok = err.Error(), false
		} else {
			checks["clickhouse"] = "ok"
		}
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	httpedge.WriteJSON(w, status, checks)
}

func debugMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func (h *Hub) close() {
	if h.listener != nil {
		_ = h.listener.Close()
	}
	if h.debug != nil {
		_ = h.debug.Close()
	}
	if h.nc != nil {
		_ = h.nc.Drain()
		for i := 0; i < 100 && !h.nc.IsClosed(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		h.nc.Close()
	}
	if h.store != nil {
		_ = h.store.Close()
	}
	if h.srv != nil {
		h.srv.Shutdown()
		h.srv.WaitForShutdown()
	}
}

// rollupRepair rebuilds the catalog's rollups in the store for the
// aggregator (aggregator.RollupRepairer).
type rollupRepair struct {
	catalog *kpi.Catalog
	store   *chstore.Store
}

func (r rollupRepair) Repair(ctx context.Context, table string, from, to time.Time, fresh func() error) error {
	return r.catalog.Repair(ctx, r.store, table, from, to, fresh)
}
