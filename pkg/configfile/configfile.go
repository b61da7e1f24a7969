// Package configfile reads the hub's YAML config file: the one place that
// knows its placeholders and how strictly it is decoded.
package configfile

import (
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Decode reads the YAML file at path into v. ${DATA_DIR} in the file is
// dataDir (the hub's --data-dir: where the dev config keeps the simulated
// systems' exports). Fields already set in v are kept unless the file sets
// them, so v may carry the defaults. With strict, a key v has no field for
// is an error naming it; without, such keys are ignored (for a tool that
// reads one part of the file).
func Decode(path, dataDir string, v any, strict bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	text := strings.ReplaceAll(string(b), "${DATA_DIR}", dataDir)
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(strict)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}
