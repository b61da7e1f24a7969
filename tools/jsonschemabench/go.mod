module github.com/iochub/iochub/tools/jsonschemabench

go 1.26.0

require (
	github.com/iochub/iochub v0.0.0
	github.com/santhosh-tekuri/jsonschema/v5 v5.3.1
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3
)

require golang.org/x/text v0.43.0 // indirect

replace github.com/iochub/iochub => ../..
