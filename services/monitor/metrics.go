package monitor

import (
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/iochub/iochub/pkg/httpedge"
)

// MetricsHandler serves reg at /metrics to an admin token of either role:
// the figures name every source and stream (Prometheus:
// authorization.credentials_file). Every process of the hub serves its
// own: the Go runtime's and the process's metrics, its HTTP routes'
// request histograms, the gateway's counts where the gateway runs, and the
// monitor's samples where the monitor runs.
func MetricsHandler(admins []Admin, reg prometheus.Gatherer) http.HandlerFunc {
	ring := httpedge.NewKeyring("admin", admins, func(a Admin) string { return a.TokenSHA256 })
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return ring.Require(func(w http.ResponseWriter, r *http.Request, _ Admin) { h.ServeHTTP(w, r) })
}

// Describe sends nothing: the monitor is an unchecked collector, its
// label sets (sources, streams, subscriptions) change from sample to
// sample.
func (m *Monitor) Describe(chan<- *prometheus.Desc) {}

// Collect gives the latest sample as metrics with conventional names:
// iochub_<thing>_<unit>, counters ending in _total, a label per stream,
// consumer, source, type or alert.
func (m *Monitor) Collect(ch chan<- prometheus.Metric) {
	s := m.Snapshot()
	firing, _ := m.Alerts()
	c := collector{ch: ch}
	for _, st := range s.Streams {
		c.gauge("iochub_stream_messages", "Messages held by a JetStream stream.", float64(st.Messages), "stream", st.Name)
		c.gauge("iochub_stream_bytes", "Bytes held by a JetStream stream.", float64(st.Bytes), "stream", st.Name)
		c.counter("iochub_stream_last_sequence", "Last sequence of a stream: every message it ever took.", float64(st.LastSeq), "stream", st.Name)
	}
	for _, cs := range s.Consumers {
		c.gauge("iochub_consumer_pending_messages", "Messages a consumer has not yet been given: its lag.", float64(cs.Pending), "stream", cs.Stream, "consumer", cs.Name)
		c.gauge("iochub_consumer_ack_pending_messages", "Messages given to a consumer and not yet acked.", float64(cs.AckPending), "stream", cs.Stream, "consumer", cs.Name)
		c.gauge("iochub_consumer_redelivered_messages", "Messages redelivered to a consumer and not yet acked.", float64(cs.Redelivered), "stream", cs.Stream, "consumer", cs.Name)
	}
	for _, src := range s.Sources {
		c.counter("iochub_source_events_total", "Events of a source stored in IOC_EVENTS since the monitor started.", float64(src.Events), "source", src.Source)
		c.counter("iochub_source_dead_letters_total", "Dead letters of a source since the monitor started.", float64(src.Rejected), "source", src.Source)
		if src.LastEventTime != nil {
			c.gauge("iochub_source_last_event_timestamp_seconds", "Unix time of a source's latest event.", float64(src.LastEventTime.Unix()), "source", src.Source)
		}
	}
	types := make([]string, 0, len(s.DLQ.ByType))
	for t := range s.DLQ.ByType {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		c.gauge("iochub_dlq_messages", "Dead letters held, by type (dlq.<sector>.<name>.v<major>, or connector.<name>).", float64(s.DLQ.ByType[t]), "type", t)
	}
	for _, sub := range s.Subscriptions {
		l := []string{"subscription", sub.Name, "agency", sub.Agency, "mode", sub.Mode}
		c.counter("iochub_subscription_delivered_total", "Events a partner agency's subscription delivered since the hub started (push: answered 2xx; pull: confirmed; nats: stored in the agency's stream).", float64(sub.Delivered), l...)
		c.gauge("iochub_subscription_pending_messages", "Events a subscription has not yet delivered: its lag.", float64(sub.Pending), l...)
		c.counter("iochub_subscription_retries_total", "Requests of a subscription sent again after a failure since the hub started.", float64(sub.Retries), l...)
		c.counter("iochub_subscription_dead_lettered_total", "Events moved to a subscription's dead letters after its give-up time since the hub started.", float64(sub.DeadLettered), l...)
		c.gauge("iochub_subscription_dead_letters", "Dead letters of a subscription waiting for a replay.", float64(sub.DeadLetters), l...)
		paused := 0.0
		if sub.Paused {
			paused = 1
		}
		c.gauge("iochub_subscription_paused", "1 when a subscription's delivery is paused.", paused, l...)
		if sub.LastDelivery != nil {
			c.gauge("iochub_subscription_last_delivery_timestamp_seconds", "Unix time of a subscription's latest delivery.", float64(sub.LastDelivery.Unix()), l...)
		}
	}
	up := 0.0
	if s.Store.Reachable {
		up = 1
	}
	c.gauge("iochub_clickhouse_up", "1 when ClickHouse answered the monitor's last ping.", up)
	c.counter("iochub_clickhouse_rows_inserted_total", "Rows the aggregator wrote to ClickHouse.", float64(s.Store.RowsInserted))
	c.counter("iochub_clickhouse_insert_errors_total", "Failed insert attempts (each retried).", float64(s.Store.InsertErrors))
	c.gauge("iochub_clickhouse_last_batch_seconds", "How long the aggregator's last batch of inserts took.", s.Store.LastBatchMs/1000)
	tables := make([]string, 0, len(s.Store.Tables))
	for t := range s.Store.Tables {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	for _, t := range tables {
		c.gauge("iochub_clickhouse_table_rows", "Rows in a ClickHouse table's active parts.", float64(s.Store.Tables[t].Rows), "table", t)
		c.gauge("iochub_clickhouse_table_bytes", "Bytes on disk of a ClickHouse table's active parts.", float64(s.Store.Tables[t].Bytes), "table", t)
	}
	c.gauge("iochub_jetstream_storage_used_bytes", "Bytes of JetStream file storage in use.", float64(s.Storage.Used))
	for _, a := range firing {
		c.gauge("iochub_alert_firing", "1 for each alert firing now.", 1, "alert", a.Name, "subject", a.Subject)
	}
}

// collector makes const metrics; descriptions are made as they come (the
// monitor is an unchecked collector).
type collector struct {
	ch    chan<- prometheus.Metric
	descs map[string]*prometheus.Desc
}

func (c *collector) gauge(name, help string, v float64, labels ...string) {
	c.metric(name, help, prometheus.GaugeValue, v, labels)
}

func (c *collector) counter(name, help string, v float64, labels ...string) {
	c.metric(name, help, prometheus.CounterValue, v, labels)
}

func (c *collector) metric(name, help string, kind prometheus.ValueType, v float64, labels []string) {
	names, values := make([]string, 0, len(labels)/2), make([]string, 0, len(labels)/2)
	for i := 0; i+1 < len(labels); i += 2 {
		names, values = append(names, labels[i]), append(values, labels[i+1])
	}
	if c.descs == nil {
		c.descs = map[string]*prometheus.Desc{}
	}
	d, ok := c.descs[name]
	if !ok {
		d = prometheus.NewDesc(name, help, names, nil)
		c.descs[name] = d
	}
	c.ch <- prometheus.MustNewConstMetric(d, kind, v, values...)
}
