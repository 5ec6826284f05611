module github.com/ozsecrets/oz/gateway

go 1.26.0
