package tenants

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: Watch
// runs in its caller's goroutine and must return when its context ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
