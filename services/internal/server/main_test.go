package server_test

import (
	"os"
	"testing"

	"github.com/ozsecrets/oz/services/internal/kv/boltcheck"
)

// TestMain lets the test binary be the child that checks a store file
// before Run serves from it (package boltcheck re-executes the binary).
func TestMain(m *testing.M) {
	boltcheck.ServeChild()
	os.Exit(m.Run())
}
