module github.com/iochub/iochub/services/iochub

go 1.26.0

replace (
	github.com/iochub/iochub/pkg => ../../pkg
	github.com/iochub/iochub/schemas => ../../schemas
)
