package edge

import "testing"

// TestIdempotencyKeyHeader: the REST header Idempotency-Key reaches the
// services under the metadata key they read, whatever its case.
func TestIdempotencyKeyHeader(t *testing.T) {
	for _, h := range []string{"Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY"} {
		if got, ok := incomingHeader(h); !ok || got != "idempotency-key" {
			t.Errorf("incomingHeader(%q): %q, %v; want idempotency-key, true", h, got, ok)
		}
	}
	if _, ok := incomingHeader("Authorization"); ok {
		t.Error("incomingHeader(Authorization): forwarded a second copy")
	}
}
