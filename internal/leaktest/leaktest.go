// Package leaktest runs a package's tests and fails them if any goroutine
// they started is still running at the end (go.uber.org/goleak): every
// goroutine of the hub has an exit.
package leaktest

import (
	"testing"

	"go.uber.org/goleak"
)

// Main is a package's TestMain. The HTTP client's idle keep-alive
// connections are the standard library's, not a leak.
func Main(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
}
