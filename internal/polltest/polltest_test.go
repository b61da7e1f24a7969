package polltest_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iochub/iochub/internal/polltest"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	n := 0
	polltest.Until(t, "three calls", time.Minute, func() error {
		if n++; n < 3 {
			return fmt.Errorf("call %d", n)
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
}

// recorder is a testing.TB that records Fatalf instead of stopping.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	panic(r)
}

func TestUntilFailsWithTheLastError(t *testing.T) {
	r := &recorder{TB: t}
	func() {
		defer func() { _ = recover() }()
		polltest.Until(r, "the rows", 30*time.Millisecond, func() error { return errors.New("2 of 5 rows") })
	}()
	if !strings.Contains(r.msg, "the rows") || !strings.Contains(r.msg, "2 of 5 rows") {
		t.Fatalf("failure %q names neither what was awaited nor the last error", r.msg)
	}
}
