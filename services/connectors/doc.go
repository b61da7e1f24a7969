// Package connectors holds one connector per sector system, each a
// connector.Source and a connector.Mapper in its own package:
// education (CSV exports dropped in a directory), and the others as they
// come. The runner, checkpoints and dead letters are pkg/connector's.
package connectors
