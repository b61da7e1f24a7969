package main

import (
	"runtime"
	"sync"
	"testing"
)

// burnCPU keeps every core busy until the test ends: the fault tests must
// hold on a saturated machine, where acks are late, redeliveries arrive while
// a batch is retried and ClickHouse answers slowly.
func burnCPU(t *testing.T) {
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
