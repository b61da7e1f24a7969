package aggregator

import (
	"fmt"
	"testing"
	"time"
)

// TestSourceCountsAreBounded (finding M4): past maxSources, the least
// recently heard tenth is forgotten and the newest are kept.
func TestSourceCountsAreBounded(t *testing.T) {
	a := &Aggregator{sources: map[string]SourceCount{}}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range maxSources + 1 {
		a.sources[fmt.Sprintf("/s/%d", i)] = SourceCount{Events: 1, Last: t0.Add(time.Duration(i) * time.Second)}
	}
	a.forgetSources()
	if n := len(a.sources); n != maxSources*9/10 {
		t.Fatalf("%d sources kept, want %d", n, maxSources*9/10)
	}
	if _, ok := a.sources[fmt.Sprintf("/s/%d", maxSources)]; !ok {
		t.Fatal("the most recently heard source was forgotten")
	}
	if _, ok := a.sources["/s/0"]; ok {
		t.Fatal("the least recently heard source was kept")
	}
}
