package monitor

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// WriteMetrics writes the latest sample in the Prometheus text format
// (version 0.0.4), with conventional names: iochub_<thing>_<unit>, counters
// ending in _total, a label per stream, consumer, source, type or alert.
func (m *Monitor) WriteMetrics(w io.Writer) {
	s := m.Snapshot()
	firing, _ := m.Alerts()
	p := &promWriter{w: w}
	p.family("iochub_stream_messages", "gauge", "Messages held by a JetStream stream.")
	for _, st := range s.Streams {
		p.sample("iochub_stream_messages", float64(st.Messages), "stream", st.Name)
	}
	p.family("iochub_stream_bytes", "gauge", "Bytes held by a JetStream stream.")
	for _, st := range s.Streams {
		p.sample("iochub_stream_bytes", float64(st.Bytes), "stream", st.Name)
	}
	p.family("iochub_stream_last_sequence", "counter", "Last sequence of a stream: every message it ever took.")
	for _, st := range s.Streams {
		p.sample("iochub_stream_last_sequence", float64(st.LastSeq), "stream", st.Name)
	}
	p.family("iochub_consumer_pending_messages", "gauge", "Messages a consumer has not yet been given: its lag.")
	for _, c := range s.Consumers {
		p.sample("iochub_consumer_pending_messages", float64(c.Pending), "stream", c.Stream, "consumer", c.Name)
	}
	p.family("iochub_consumer_ack_pending_messages", "gauge", "Messages given to a consumer and not yet acked.")
	for _, c := range s.Consumers {
		p.sample("iochub_consumer_ack_pending_messages", float64(c.AckPending), "stream", c.Stream, "consumer", c.Name)
	}
	p.family("iochub_consumer_redelivered_messages", "gauge", "Messages redelivered to a consumer and not yet acked.")
	for _, c := range s.Consumers {
		p.sample("iochub_consumer_redelivered_messages", float64(c.Redelivered), "stream", c.Stream, "consumer", c.Name)
	}
	p.family("iochub_source_events_total", "counter", "Events of a source stored in IOC_EVENTS since the monitor started.")
	for _, src := range s.Sources {
		p.sample("iochub_source_events_total", float64(src.Events), "source", src.Source)
	}
	p.family("iochub_source_dead_letters_total", "counter", "Dead letters of a source since the monitor started.")
	for _, src := range s.Sources {
		p.sample("iochub_source_dead_letters_total", float64(src.Rejected), "source", src.Source)
	}
	p.family("iochub_source_last_event_timestamp_seconds", "gauge", "Unix time of a source's latest event.")
	for _, src := range s.Sources {
		if src.LastEventTime != nil {
			p.sample("iochub_source_last_event_timestamp_seconds", float64(src.LastEventTime.Unix()), "source", src.Source)
		}
	}
	p.family("iochub_dlq_messages", "gauge", "Dead letters held, by type (dlq.<sector>.<name>.v<major>, or connector.<name>).")
	types := make([]string, 0, len(s.DLQ.ByType))
	for t := range s.DLQ.ByType {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		p.sample("iochub_dlq_messages", float64(s.DLQ.ByType[t]), "type", t)
	}
	subFamilies := []struct {
		name, kind, help string
		value            func(SubscriptionStat) (float64, bool)
	}{
		{"iochub_subscription_delivered_total", "counter", "Events a partner agency's subscription delivered since the hub started (push: answered 2xx; pull: confirmed; nats: stored in the agency's stream).",
			func(s SubscriptionStat) (float64, bool) { return float64(s.Delivered), true }},
		{"iochub_subscription_pending_messages", "gauge", "Events a subscription has not yet delivered: its lag.",
			func(s SubscriptionStat) (float64, bool) { return float64(s.Pending), true }},
		{"iochub_subscription_retries_total", "counter", "Requests of a subscription sent again after a failure since the hub started.",
			func(s SubscriptionStat) (float64, bool) { return float64(s.Retries), true }},
		{"iochub_subscription_dead_lettered_total", "counter", "Events moved to a subscription's dead letters after its give-up time since the hub started.",
			func(s SubscriptionStat) (float64, bool) { return float64(s.DeadLettered), true }},
		{"iochub_subscription_dead_letters", "gauge", "Dead letters of a subscription waiting for a replay.",
			func(s SubscriptionStat) (float64, bool) { return float64(s.DeadLetters), true }},
		{"iochub_subscription_paused", "gauge", "1 when a subscription's delivery is paused.",
			func(s SubscriptionStat) (float64, bool) { return map[bool]float64{true: 1}[s.Paused], true }},
		{"iochub_subscription_last_delivery_timestamp_seconds", "gauge", "Unix time of a subscription's latest delivery.",
			func(s SubscriptionStat) (float64, bool) {
				if s.LastDelivery == nil {
					return 0, false
				}
				return float64(s.LastDelivery.Unix()), true
			}},
	}
	for _, f := range subFamilies {
		p.family(f.name, f.kind, f.help)
		for _, sub := range s.Subscriptions {
			if v, ok := f.value(sub); ok {
				p.sample(f.name, v, "subscription", sub.Name, "agency", sub.Agency, "mode", sub.Mode)
			}
		}
	}
	p.family("iochub_clickhouse_up", "gauge", "1 when ClickHouse answered the monitor's last ping.")
	up := 0.0
	if s.Store.Reachable {
		up = 1
	}
	p.sample("iochub_clickhouse_up", up)
	p.family("iochub_clickhouse_rows_inserted_total", "counter", "Rows the aggregator wrote to ClickHouse.")
	p.sample("iochub_clickhouse_rows_inserted_total", float64(s.Store.RowsInserted))
	p.family("iochub_clickhouse_insert_errors_total", "counter", "Failed insert attempts (each retried).")
	p.sample("iochub_clickhouse_insert_errors_total", float64(s.Store.InsertErrors))
	p.family("iochub_clickhouse_last_batch_seconds", "gauge", "How long the aggregator's last batch of inserts took.")
	p.sample("iochub_clickhouse_last_batch_seconds", s.Store.LastBatchMs/1000)
	tables := make([]string, 0, len(s.Store.Tables))
	for t := range s.Store.Tables {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	p.family("iochub_clickhouse_table_rows", "gauge", "Rows in a ClickHouse table's active parts.")
	for _, t := range tables {
		p.sample("iochub_clickhouse_table_rows", float64(s.Store.Tables[t].Rows), "table", t)
	}
	p.family("iochub_clickhouse_table_bytes", "gauge", "Bytes on disk of a ClickHouse table's active parts.")
	for _, t := range tables {
		p.sample("iochub_clickhouse_table_bytes", float64(s.Store.Tables[t].Bytes), "table", t)
	}
	p.family("iochub_jetstream_storage_used_bytes", "gauge", "Bytes of JetStream file storage in use.")
	p.sample("iochub_jetstream_storage_used_bytes", float64(s.Storage.Used))
	p.family("iochub_alert_firing", "gauge", "1 for each alert firing now.")
	for _, a := range firing {
		p.sample("iochub_alert_firing", 1, "alert", a.Name, "subject", a.Subject)
	}
}

type promWriter struct{ w io.Writer }

func (p *promWriter) family(name, typ, help string) {
	fmt.Fprintf(p.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func (p *promWriter) sample(name string, v float64, labels ...string) {
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `%s="%s"`, labels[i], labelEscaper.Replace(labels[i+1]))
		}
		b.WriteByte('}')
	}
	fmt.Fprintf(p.w, "%s %v\n", b.String(), v)
}
