module github.com/iochub/iochub/schemas

go 1.26.0
