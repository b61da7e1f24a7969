package iocapi

import "testing"

func TestPublicFiguresHideSmallGroups(t *testing.T) {
	n := func(v float64) *float64 { return &v }
	for _, tt := range []struct {
		name                         string
		received, resolved, onTime   *float64
		shown, rateShown, suppressed bool
	}{
		{"nothing", nil, nil, nil, false, false, true},
		{"four received", n(4), n(4), n(100), false, false, true},
		{"five received, four resolved", n(5), n(4), n(75), true, false, false},
		{"five received, five resolved", n(5), n(5), n(80), true, true, false},
		{"resolved without deadlines", n(9), n(6), nil, true, false, false},
	} {
		f := publicFigures(tt.received, tt.resolved, tt.onTime)
		if f.Suppressed != tt.suppressed || (f.Received != nil) != tt.shown || (f.Resolved != nil) != tt.shown || (f.OnTimeRate != nil) != tt.rateShown {
			t.Errorf("%s: %+v", tt.name, f)
		}
	}
}
