module github.com/ozsecrets/oz/cli

go 1.26.0
