module github.com/ozsecrets/oz/e2e

go 1.26.0
