package kpi

import (
	"strings"
	"testing"
)

func TestTargetStates(t *testing.T) {
	ninety, thirty := 90.0, 30.0
	onTime := &Target{Better: "higher", Goal: 95, Alarm: &ninety}
	beds := &Target{Better: "lower", Goal: 85, Alarm: &ninety}
	online := &Target{Better: "higher", Goal: 50, Alarm: &thirty}
	none := &Target{Better: "lower", Goal: 0}
	for _, c := range []struct {
		t    *Target
		v    float64
		want string
	}{
		{onTime, 96, TargetMet}, {onTime, 95, TargetMet}, {onTime, 92, TargetBelow}, {onTime, 90, TargetBelow}, {onTime, 89.9, TargetAlarm},
		{beds, 76.3, TargetMet}, {beds, 88, TargetBelow}, {beds, 90, TargetBelow}, {beds, 90.1, TargetAlarm},
		{online, 60, TargetMet}, {online, 29, TargetAlarm},
		{none, 0, TargetMet}, {none, 1, TargetAlarm},
	} {
		if got := c.t.State(c.v); got != c.want {
			t.Errorf("%+v at %g: %s, want %s", *c.t, c.v, got, c.want)
		}
	}
}

func TestTargetMistakesAreNamed(t *testing.T) {
	high := 99.0
	for _, c := range []struct {
		t    Target
		want string
	}{
		{Target{Better: "up", Goal: 1, Basis: Text{VI: "x", EN: "x"}}, `target.better "up"`},
		{Target{Better: "higher", Goal: 95, Alarm: &high, Basis: Text{VI: "x", EN: "x"}}, "target.alarm 99 is better than the goal 95"},
		{Target{Better: "lower", Goal: 1}, "target.basis needs vi and en"},
	} {
		if err := c.t.check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.t, err, c.want)
		}
	}
}
