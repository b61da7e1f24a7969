// Package burn keeps every core busy for the fault tests: they must hold
// on a saturated machine, where acks are late, redeliveries arrive while a
// batch is retried, ClickHouse answers slowly and a receiver's retries come
// late.
package burn

import (
	"runtime"
	"sync"
	"testing"
)

// CPU keeps every core busy until the test ends.
func CPU(t testing.TB) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := uint64(1)
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := 0; i < 100_000; i++ {
					x = x*6364136223846793005 + 1442695040888963407
				}
			}
		}()
	}
	t.Cleanup(func() { close(stop); wg.Wait() })
}
