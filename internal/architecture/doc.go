// Package architecture holds the test that keeps the module's boundaries:
// libraries under pkg/ never reach into services/, the edge services that
// accept events (gateway, connectors) never reach ClickHouse, and no service
// imports another — only the composition root (services/iochub) wires them.
//
// The boundaries used to be module walls (one go.mod per service); they are
// now this test over `go list -deps`, so one module builds and tests from the
// root (docs/decisions/0006-one-module.md).
package architecture
