// Package kpis holds the IOC's KPI definitions and the ClickHouse rollups
// they read, as data: adding a KPI is adding a file, not changing Go code.
//
// A KPI lives at <sector>/<name>.yaml (see README.md beside this file for
// the format); a rollup lives at rollups/<table>.yaml. Both are embedded so
// the hub runs from its binary alone; `iochub run --kpi-dir` reads a
// directory of the same layout instead.
package kpis

import "embed"

// FS holds rollups/*.yaml and <sector>/*.yaml.
//
//go:embed rollups/*.yaml */*.yaml
var FS embed.FS
