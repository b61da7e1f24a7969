module github.com/iochub/iochub/kpis

go 1.26.0
