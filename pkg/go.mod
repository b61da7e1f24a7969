module github.com/iochub/iochub/pkg

go 1.26.0

replace github.com/iochub/iochub/schemas => ../schemas

require (
	github.com/iochub/iochub/schemas v0.0.0-00010101000000-000000000000
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3
	golang.org/x/text v0.43.0
)
