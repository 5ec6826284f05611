module github.com/ozsecrets/oz/gateway

go 1.26.0

require github.com/ozsecrets/oz/proto v0.0.0

// The workspace resolves it; the replace lets `go mod tidy` work per module.
replace github.com/ozsecrets/oz/proto => ../proto
