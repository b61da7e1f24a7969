module github.com/iochub/iochub/services/gateway

go 1.26.0

replace (
	github.com/iochub/iochub/pkg => ../../pkg
	github.com/iochub/iochub/schemas => ../../schemas
)
