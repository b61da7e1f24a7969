package hub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"time"

	"io/fs"
	"os"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/iochub/iochub/kpis"
	"github.com/iochub/iochub/pkg/admit"
	"github.com/iochub/iochub/pkg/area"
	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/kpi"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/aggregator"
	"github.com/iochub/iochub/services/connectors"
	"github.com/iochub/iochub/services/gateway"
	"github.com/iochub/iochub/services/iocapi"
	"github.com/iochub/iochub/services/monitor"
)

// Hub is a started iochub process.
type Hub struct {
	cfg      Config
	log      *zap.Logger
	srv      *server.Server // embedded NATS, or nil
	nc       *nats.Conn
	js       jetstream.JetStream
	store    *chstore.Store // nil when the aggregator does not run here
	reg      *schema.Registry
	pseudo   *pii.Pseudonymizer
	listener net.Listener
	agg      *aggregator.Aggregator
	api      *iocapi.API
	catalog  *kpi.Catalog
	conns    *connectors.Set
	mon      *monitor.Monitor
	toFill   []string // rollups to fill from the raw rows before the aggregator writes
}

// Start connects everything and declares the streams and tables. Errors are
// one line each: what could not be reached, and where.
func Start(ctx context.Context, cfg Config, log *zap.Logger) (_ *Hub, err error) {
	h := &Hub{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			h.close()
		}
	}()
	if h.reg, err = schema.Load(schemas.FS); err != nil {
		return nil, err
	}
	if h.pseudo, err = pii.New([]byte(cfg.PIIKey)); err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	svcs := cfg.ServiceList()
	var catalog *kpi.Catalog
	if slices.Contains(svcs, ServiceAggregator) || slices.Contains(svcs, ServiceIOCAPI) {
		if catalog, err = loadCatalog(cfg.KPIDir); err != nil {
			return nil, err
		}
	}
	// ClickHouse first: when it is unreachable, that is the one line the operator sees.
	if slices.Contains(svcs, ServiceAggregator) || slices.Contains(svcs, ServiceIOCAPI) {
		if h.store, err = chstore.Open(dctx, cfg.ClickHouseDSN); err != nil {
			return nil, fmt.Errorf("clickhouse at %s: %w (start one with deploy/clickhouse/ensure.sh, or `make run`)", cfg.ClickHouseDSN, err)
		}
	}
	h.catalog = catalog
	if slices.Contains(svcs, ServiceAggregator) {
		// Raw tables, then the rollups over them, before the aggregator writes.
		if err := h.store.Migrate(dctx, h.reg); err != nil {
			return nil, fmt.Errorf("clickhouse migrations: %w", err)
		}
		if h.toFill, err = catalog.Migrate(dctx, h.store); err != nil {
			return nil, fmt.Errorf("clickhouse rollups: %w", err)
		}
	}
	if slices.Contains(svcs, ServiceIOCAPI) {
		areas, err := area.Load(cfg.AreasFile)
		if err != nil {
			return nil, fmt.Errorf("--areas: %w", err)
		}
		loc, err := time.LoadLocation(cfg.File.IOCAPI.Timezone)
		if err != nil {
			return nil, fmt.Errorf("iocapi timezone: %w", err)
		}
		engine := &kpi.Engine{Catalog: catalog, Store: h.store, Location: loc}
		if h.api, err = iocapi.New(cfg.File.IOCAPI, catalog, engine, areas, log); err != nil {
			return nil, err
		}
	}
	url := cfg.NATSURL
	opts := []nats.Option{nats.Name("iochub"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	if url == "" {
		interval, always, _ := cfg.SyncSetting()
		h.srv, err = natsjs.RunEmbedded(natsjs.EmbeddedConfig{Listen: cfg.NATSListen, StoreDir: cfg.storeDir(), SyncInterval: interval, SyncAlways: always,
			MQTTListen: cfg.MQTTListen})
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.InProcessServer(h.srv))
		log.Info("embedded JetStream started", zap.String("store", cfg.storeDir()), zap.String("listen", cfg.NATSListen))
	}
	if h.nc, err = nats.Connect(url, opts...); err != nil {
		return nil, fmt.Errorf("nats %s: %w", url, err)
	}
	if h.js, err = natsjs.NewJetStream(h.nc); err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if err := natsjs.Declare(dctx, h.js, cfg.streamLimits()); err != nil {
		return nil, fmt.Errorf("jetstream at %q: %w", displayURL(url), err)
	}
	if err := cfg.File.Connectors.Prepare(dctx, h.js); err != nil {
		return nil, err
	}
	if h.conns, err = connectors.Build(cfg.File.Connectors, connectors.Deps{NC: h.nc, JS: h.js, Registry: h.reg, Pseudo: h.pseudo, Log: log}); err != nil {
		return nil, err
	}
	if slices.Contains(svcs, ServiceMonitor) {
		var ping monitor.Pinger
		if h.store != nil {
			ping = h.store
		}
		mcfg := cfg.File.Monitor
		if h.srv != nil {
			mcfg.StoreDir = cfg.storeDir()
		}
		h.mon = monitor.New(mcfg, h.nc, h.js, ping, log.With(zap.String("component", "monitor")))
	}
	if slices.Contains(svcs, ServiceAggregator) {
		h.agg = aggregator.New(cfg.aggregatorConfig(), h.js, h.store, h.reg, h.pseudo, log)
		if h.mon != nil { // count sources from the aggregator, not from every event again
			agg := h.agg
			h.mon.CountSourcesWith(func() map[string]monitor.SourceTotal {
				out := map[string]monitor.SourceTotal{}
				for src, c := range agg.SourceCounts() {
					out[src] = monitor.SourceTotal{Events: c.Events, Last: c.Last}
				}
				return out
			})
			h.mon.StoreStatsWith(func() monitor.StoreCounters {
				return monitor.StoreCounters{RowsInserted: agg.Stats.Inserted.Load(), InsertErrors: agg.Stats.Retries.Load(),
					Batches: agg.Stats.Batches.Load(), LastBatch: time.Duration(agg.Stats.LastBatchNs.Load())}
			}, func(ctx context.Context) (map[string]monitor.TableSize, error) {
				sizes, err := h.store.TableSizes(ctx)
				out := map[string]monitor.TableSize{}
				for t, s := range sizes {
					out[t] = monitor.TableSize{Rows: s.Rows, Bytes: s.Bytes}
				}
				return out, err
			})
		}
	}
	if h.listener, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("http listen: %w", err)
	}
	return h, nil
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

func displayURL(u string) string {
	if u == "" {
		return "embedded"
	}
	return u
}

// HTTPAddr is the address the HTTP server listens on.
func (h *Hub) HTTPAddr() string { return h.listener.Addr().String() }

// Run serves until ctx is done, then shuts down in order: stop taking
// requests, let the aggregator write and ack what it holds, close NATS,
// stop the embedded server.
func (h *Hub) Run(ctx context.Context) error {
	defer h.close()
	mux := http.NewServeMux()
	if slices.Contains(h.cfg.ServiceList(), ServiceGateway) {
		gateway.New(h.cfg.File.Gateway, h.reg, gateway.JetStreamPublisher{JS: h.js}, h.pseudo, h.log).Register(mux)
	}
	if h.api != nil {
		h.api.Register(mux)
	}
	if h.mon != nil {
		h.mon.Register(mux, admit.New(h.reg, h.pseudo, 0))
	}
	for path, wh := range h.conns.Webhooks {
		mux.Handle("POST "+path, wh)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpedge.WriteJSON(w, http.StatusOK, map[string]string{"status": "up"})
	})
	mux.HandleFunc("GET /readyz", h.ready)
	hs := httpedge.NewServer(mux, h.cfg.File.HTTP)

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
	if h.agg != nil {
		g.Go(func() error { // exits on ctx done after flushing
			// New rollups are filled first, outside the start deadline; the
			// aggregator writes only once they are complete (events wait in
			// IOC_EVENTS meanwhile).
			if err := h.catalog.Fill(gctx, h.store, h.toFill, h.log); err != nil {
				if gctx.Err() != nil {
					return nil // stopped during the fill: the next start fills again
				}
				return fmt.Errorf("clickhouse rollups: %w", err)
			}
			return h.agg.Run(gctx)
		})
	}
	if h.agg != nil && h.cfg.CompactEvery > 0 {
		g.Go(func() error { h.compactRollups(gctx); return nil })
	}
	for _, r := range h.conns.Runners {
		g.Go(func() error { return r.Run(gctx) })
	}
	if h.mon != nil {
		g.Go(func() error { return h.mon.Run(gctx) })
	}
	if h.cfg.Simulate {
		g.Go(func() error { return h.simulate(gctx) })
	}
	if h.cfg.Demo {
		g.Go(func() error { h.runDemo(gctx); return nil })
	}
	if h.cfg.DebugAddr != "" {
		dbg := httpedge.NewServer(debugMux(), h.cfg.File.HTTP)
		dbg.Addr = h.cfg.DebugAddr
		g.Go(func() error { // exits when ctx is done
			go func() { <-gctx.Done(); _ = dbg.Close() }()
			if err := dbg.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
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
