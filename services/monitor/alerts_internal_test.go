package monitor

import (
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestAlertsWaitTheirMinimumAndResolveDelay walks one monitor's alerts
// through samples at given times: a sustained condition fires only after
// the minimum duration; a firing alert whose condition flaps stays one
// alert; it resolves only once the condition has been gone for the
// resolve delay.
func TestAlertsWaitTheirMinimumAndResolveDelay(t *testing.T) {
	m := New(Config{AlertMinDuration: 30 * time.Second, AlertResolveDelay: 5 * time.Minute}, Deps{Log: zap.NewNop()})
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	down := condition{name: AlertStoreDown, subject: "clickhouse", sustained: true, text: Texts{VI: "x", EN: "x"}}
	letters := condition{name: AlertDeadLetters, subject: "IOC_DLQ", text: Texts{VI: "y", EN: "y"}}
	steps := []struct {
		at      time.Duration
		holds   []condition
		firing  []string // names firing after the sample
		changes []string // name:state of the sample's changes
	}{
		{0, []condition{down, letters}, []string{AlertDeadLetters}, []string{"dead_letters_arriving:firing"}},
		{20 * time.Second, []condition{down}, []string{AlertDeadLetters}, nil},
		{30 * time.Second, []condition{down}, []string{AlertStoreDown, AlertDeadLetters}, []string{"clickhouse_unreachable:firing"}},
		// A second burst within the resolve delay: the same alert.
		{time.Minute, []condition{down, letters}, []string{AlertStoreDown, AlertDeadLetters}, nil},
		{2 * time.Minute, nil, []string{AlertStoreDown, AlertDeadLetters}, nil},
		{time.Minute + 5*time.Minute - time.Second, nil, []string{AlertStoreDown, AlertDeadLetters}, nil},
		{time.Minute + 5*time.Minute, nil, nil, []string{"clickhouse_unreachable:resolved", "dead_letters_arriving:resolved"}},
		// Down again briefly: shorter than the minimum, no alert.
		{7 * time.Minute, []condition{down}, nil, nil},
		{7*time.Minute + 29*time.Second, []condition{down}, nil, nil},
		{7*time.Minute + 35*time.Second, nil, nil, nil},
	}
	for _, s := range steps {
		changes := m.apply(t0.Add(s.at), s.holds)
		var got []string
		for _, c := range changes {
			got = append(got, c.Name+":"+c.State)
		}
		if !same(got, s.changes) {
			t.Errorf("at %s: changes %v, want %v", s.at, got, s.changes)
		}
		firing, _ := m.Alerts()
		var names []string
		for _, a := range firing {
			names = append(names, a.Name)
		}
		if !same(names, s.firing) {
			t.Errorf("at %s: firing %v, want %v", s.at, names, s.firing)
		}
	}
	firing, hist := m.Alerts()
	if len(firing) != 0 || len(hist) != 4 {
		t.Errorf("firing %v, history %+v: want none firing and 4 changes", firing, hist)
	}
}

func same(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDurationsAreWrittenAsPeopleDo(t *testing.T) {
	for _, c := range []struct {
		d      time.Duration
		vi, en string
	}{
		{2 * time.Minute, "2 phút", "2 min"},
		{90 * time.Minute, "1 giờ 30 phút", "1 h 30 min"},
		{300 * time.Millisecond, "0,3 giây", "0.3 s"},
		{15 * time.Minute, "15 phút", "15 min"},
	} {
		if durVI(c.d) != c.vi || durEN(c.d) != c.en {
			t.Errorf("%s: %q, %q; want %q, %q", c.d, durVI(c.d), durEN(c.d), c.vi, c.en)
		}
	}
}
