// Command schemagen compiles every JSON Schema of schemas/ into a Go
// function of package schema (pkg/schema/zz_compiled.go) that validates
// decoded data for exactly the keywords the schemas use, reporting what the
// reference validator reports: the same verdict, JSON pointers and rules.
//
//	go generate ./pkg/schema
//
// A schema using a keyword it does not know fails generation with an error
// naming the schema, the keyword's location and the keyword.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/iochub/iochub/internal/schemagen/gen"
	"github.com/iochub/iochub/schemas"
)

func main() {
	out := flag.String("out", "zz_compiled.go", "file to write")
	flag.Parse()
	src, err := gen.Generate(schemas.FS)
	if err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
}
