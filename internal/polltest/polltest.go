// Package polltest waits in tests for what the code under test does in its
// own time: it polls a condition until it holds or a deadline passes, and
// the failure says what was awaited and the condition's last error. Tests
// poll rather than sleep: a saturated machine only makes them slower, never
// wrong.
package polltest

import (
	"errors"
	"testing"
	"time"
)

// ErrNotYet is what a condition without a better reason returns.
var ErrNotYet = errors.New("not yet")

// Until polls cond until it returns nil, every 10 ms at first and at most
// every 250 ms; after timeout it fails the test naming what and cond's last
// error.
func Until(t testing.TB, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 10 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s; last: %v", what, timeout, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// True is Until for a condition that is true or false.
func True(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	Until(t, what, timeout, func() error {
		if cond() {
			return nil
		}
		return ErrNotYet
	})
}
