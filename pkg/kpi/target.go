package kpi

import (
	"errors"
	"fmt"
)

// Target is a KPI's goal and the point past which it is an alarm, from
// its file (target:). Better says which way is better: higher (an
// on-time rate) or lower (bed occupancy, waiting minutes).
type Target struct {
	Better string  `yaml:"better" json:"better"`
	Goal   float64 `yaml:"goal" json:"goal"`
	// Alarm: a value worse than it (below it when higher is better, above
	// it when lower is) is an alarm; no alarm given, the goal is.
	Alarm *float64 `yaml:"alarm" json:"alarm,omitempty"`
	// Basis says where the goal comes from: a national indicator, the
	// province's plan, or an example to be set.
	Basis Text `yaml:"basis" json:"basis"`
}

// Target states.
const (
	TargetMet   = "met"   // at or better than the goal
	TargetBelow = "below" // worse than the goal, not past the alarm
	TargetAlarm = "alarm" // past the alarm
)

// State is where v stands against the target.
func (t *Target) State(v float64) string {
	worse := func(a, b float64) bool { // a worse than b
		if t.Better == "lower" {
			return a > b
		}
		return a < b
	}
	alarm := t.Goal
	if t.Alarm != nil {
		alarm = *t.Alarm
	}
	switch {
	case worse(v, alarm):
		return TargetAlarm
	case worse(v, t.Goal):
		return TargetBelow
	}
	return TargetMet
}

func (t *Target) check() error {
	var errs []error
	if t.Better != "higher" && t.Better != "lower" {
		errs = append(errs, fmt.Errorf("target.better %q: want higher or lower", t.Better))
	}
	if t.Alarm != nil {
		if (t.Better == "higher" && *t.Alarm > t.Goal) || (t.Better == "lower" && *t.Alarm < t.Goal) {
			errs = append(errs, fmt.Errorf("target.alarm %g is better than the goal %g: an alarm is past the goal", *t.Alarm, t.Goal))
		}
	}
	if t.Basis.VI == "" || t.Basis.EN == "" {
		errs = append(errs, errors.New("target.basis needs vi and en: where the goal comes from"))
	}
	return errors.Join(errs...)
}
