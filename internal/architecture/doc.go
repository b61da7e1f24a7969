// Package architecture holds the test that keeps the module's boundaries:
// libraries under pkg/ never reach into services/, the edge services that
// accept events (gateway, connectors) never reach ClickHouse, no service
// imports another — only the composition root (services/iochub) wires them —
// and nothing of the hub imports the simulated systems (sim/) or their MQTT
// client.
//
// The boundaries used to be module walls (one go.mod per service); they are
// now this test over `go list -deps`, so one module builds and tests from the
// root (docs/decisions/0006-one-module.md).
package architecture
