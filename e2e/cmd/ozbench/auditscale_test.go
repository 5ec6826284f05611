package main

import (
	"path/filepath"
	"testing"

	"github.com/ozsecrets/oz/e2e/harness"
)

// BenchmarkAuditScale runs the scale section's `oz audit verify` rows
// alone, on a system of its own, once whatever b.N (the rows are timed
// inside, and printed):
//
//	cd e2e && go test -run '^$' -bench AuditScale -benchtime 1x ./cmd/ozbench -args -audit-events 100000,1000000
func BenchmarkAuditScale(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := harness.Build(bin); err != nil {
		b.Fatal(err)
	}
	sys, err := harness.Start(bin, filepath.Join(dir, "data"))
	if err != nil {
		b.Fatal(err)
	}
	defer sys.Stop()
	b.ResetTimer()
	if err := benchAuditScale(sys); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
}
