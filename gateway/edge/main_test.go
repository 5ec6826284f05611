package edge_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: the proxy
// starts two per call, and each must end with its call.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
