// Package traffic brings in the traffic sensors and the incident centre.
//
// Sensors publish their counts over MQTT to the NATS server's MQTT
// listener (`iochub run --mqtt-listen`), topic traffic/sensors/<sensor>/counts,
// which NATS carries as subject traffic.sensors.<sensor>.counts. The
// stream SensorStream keeps those messages until the connector has turned
// them into traffic.flow events, so a connector that is down loses
// nothing. The payload:
//
//	{"sensor": "LOOP-001", "segment": "QL1A-01", "area": "27256",
//	 "start": "2026-11-23T08:00:00+07:00", "seconds": 300,
//	 "counts": {"motorbike": 812, "car": 140, "truck": 22, "bus": 6, "bicycle": 15},
//	 "speed_kmh": 38.5, "occupancy": 41.2}
//
// Incidents arrive as signed webhooks (connector.Webhook) from the traffic
// incident centre and become traffic.incident events (see MapIncident).
package traffic
