package secretstore_test

import (
	"path/filepath"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/boltstore"
	"github.com/ozsecrets/oz/services/secretstore/storetest"
)

// TestTraceStoreConformance checks that the tracing decorator changes
// nothing a store does, its optional capabilities included.
func TestTraceStoreConformance(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	storetest.Run(t, func(t *testing.T) secretstore.Store {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "secretstore.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		traced := secretstore.TraceStore(s, tp)
		if _, ok := traced.(secretstore.OwnersLister); !ok {
			t.Error("the traced store lost OwnersLister")
		}
		if _, ok := traced.(secretstore.Scanner); !ok {
			t.Error("the traced store lost Scanner")
		}
		return traced
	})
}
