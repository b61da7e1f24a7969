// Package schemas holds the JSON Schemas (2020-12) of every iochub event type,
// embedded so that services compile them at start without touching the disk
// or the network.
//
// A schema lives at <sector>/<name>.v<major>.json and describes the `data` of
// events of type vn.ioc.<sector>.<name>.v<major>. Valid and invalid example
// events for each type live under <sector>/examples/.
package schemas

import (
	"embed"
	"encoding/json"
	"io/fs"
)

// FS holds the schema files, <sector>/<name>.v<major>.json.
//
//go:embed */*.json
var FS embed.FS

// Examples holds the example events: <sector>/examples/<name>.v<major>.valid.json
// (a JSON array of CloudEvents), <sector>/examples/<name>.v<major>.invalid.json
// (a JSON array of CloudEvents, each failing one rule: a batch the gateway
// answers 400) and <sector>/examples/<name>.v<major>.invalid.want.json (for
// each invalid event, {"id", "pointer", "rule"}: what it must fail).
//
//go:embed */examples/*.json
var Examples embed.FS

// ExampleBodies are request bodies made of the examples: every example
// file as it is (a batch; the .want.json files too, as bodies the gateway
// must refuse), and each event of them alone. Tests and fuzz targets seed
// with them.
func ExampleBodies() (batches, events [][]byte) {
	files, _ := fs.Glob(Examples, "*/examples/*.json")
	for _, file := range files {
		b, err := fs.ReadFile(Examples, file)
		if err != nil {
			continue
		}
		batches = append(batches, b)
		var evs []json.RawMessage
		_ = json.Unmarshal(b, &evs)
		for _, e := range evs {
			events = append(events, e)
		}
	}
	return batches, events
}
