package connector_test

import (
	"testing"

	"github.com/iochub/iochub/internal/leaktest"
)

// TestMain fails the package if a test leaves a goroutine running.
func TestMain(m *testing.M) { leaktest.Main(m) }
