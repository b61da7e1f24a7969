// Package flagenv gives every command-line flag an environment twin:
// --clickhouse-dsn is also IOCHUB_CLICKHOUSE_DSN. A flag given on the command
// line wins over the variable.
package flagenv

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Name is the variable of flag name under prefix: ("IOCHUB", "nats-url") → IOCHUB_NATS_URL.
func Name(prefix, flagName string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Apply sets every flag of fs not given on the command line from its
// variable, if set. Call it after fs.Parse. The error names the variable.
func Apply(fs *flag.FlagSet, prefix string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(Name(prefix, f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", Name(prefix, f.Name), v, e)
			}
		}
	})
	return err
}

// Usage appends the variable to each flag's help text.
func Usage(fs *flag.FlagSet, prefix string) {
	fs.VisitAll(func(f *flag.Flag) {
		f.Usage += " (env " + Name(prefix, f.Name) + ")"
	})
}
