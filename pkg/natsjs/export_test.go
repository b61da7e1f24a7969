package natsjs

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Window is a JetStream context with a publish window of size and hold,
// and a way to take room in it as publishes in flight would.
type Window struct {
	JS jetstream.JetStream // publish through this
	w  *windowed
}

func NewWindow(js jetstream.JetStream, size int, hold time.Duration) Window {
	w := newWindowed(js, size, hold)
	return Window{JS: w, w: w}
}

// Take takes n of the window's room; Give gives it back.
func (w Window) Take(n int) error { return w.w.room.Acquire(context.Background(), int64(n)) }
func (w Window) Give(n int)       { w.w.room.Release(int64(n)) }

// Free reports whether the whole window is free.
func (w Window) Free() bool {
	if !w.w.room.TryAcquire(int64(w.w.size)) {
		return false
	}
	w.w.room.Release(int64(w.w.size))
	return true
}
