// Package lease runs a task in one process at a time among the replicas of
// a service: the holder of a key in a JetStream KV bucket runs it, renews
// the key while it runs, and deletes it when it stops; a holder that dies
// stops renewing, the key expires, and another replica takes it over.
//
// A lease bounds how long two holders can overlap, it does not exclude it
// (a holder may stall past its lease without knowing): the tasks it runs
// must be safe to run twice for a moment. The connectors are: a record
// read twice is the same event, with the same identity, stored once.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Bucket holds the leases, one key each; a key not renewed for the
// bucket's TTL expires.
const Bucket = "IOC_LEASES"

// DefaultTTL is how long a lease lasts without a renewal: the longest a
// task is not run after its holder died.
const DefaultTTL = 10 * time.Second

// Leases are the leases of one process.
type Leases struct {
	kv     jetstream.KeyValue
	holder string // this process: host, pid and a random part
	ttl    time.Duration
	log    *zap.Logger
}

// Open declares Bucket with ttl (DefaultTTL when 0) and names this process.
func Open(ctx context.Context, js jetstream.JetStream, ttl time.Duration, log *zap.Logger) (*Leases, error) {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: Bucket, TTL: ttl, Storage: jetstream.FileStorage,
		Description: "iochub: which replica runs each single-run task (connectors' pollers)"})
	if err != nil {
		return nil, fmt.Errorf("lease bucket %s: %w", Bucket, err)
	}
	host, _ := os.Hostname()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &Leases{kv: kv, holder: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b)), ttl: ttl, log: log}, nil
}

// Holder names this process in the keys it holds.
func (l *Leases) Holder() string { return l.holder }

// Run runs task while this process holds key, until ctx ends: it waits for
// the key, runs task with a context that ends when the lease is lost (not
// renewed within its TTL) or ctx ends, releases the key when task returns,
// and waits for it again. It returns task's error, or nil when ctx ends.
func (l *Leases) Run(ctx context.Context, key string, task func(context.Context) error) error {
	log := l.log.With(zap.String("lease", key), zap.String("holder", l.holder))
	for ctx.Err() == nil {
		rev, err := l.kv.Create(ctx, key, []byte(l.holder))
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
				log.Warn("lease: taking it failed; trying again", zap.Error(err))
			}
			select {
			case <-ctx.Done():
			case <-time.After(l.ttl / 4):
			}
			continue
		}
		log.Info("lease taken: running")
		err = l.hold(ctx, key, rev, task, log)
		if err != nil {
			return err
		}
	}
	return nil
}

// hold runs task under the lease taken at rev, renewing it every third of
// its TTL; a renewal that fails past two thirds of the TTL ends the task,
// before the key can expire for another replica to take.
func (l *Leases) hold(ctx context.Context, key string, rev uint64, task func(context.Context) error, log *zap.Logger) error {
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- task(tctx) }()
	renewed := time.Now()
	tick := time.NewTicker(l.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			l.release(key, rev, log)
			return err
		case <-tick.C:
			rctx, rcancel := context.WithTimeout(ctx, l.ttl/3)
			next, err := l.kv.Update(rctx, key, []byte(l.holder), rev)
			rcancel()
			switch {
			case err == nil:
				rev, renewed = next, time.Now()
			case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyRevisionMismatch):
				log.Warn("lease lost (expired, or taken by another replica): stopping", zap.Error(err))
				cancel()
				<-done
				return nil
			case time.Since(renewed) > 2*l.ttl/3:
				log.Warn("lease not renewed in time: stopping", zap.Error(err))
				cancel()
				<-done
				return nil
			}
		}
	}
}

// release deletes the key if this process still holds it, so another
// replica takes over at once rather than after the TTL.
func (l *Leases) release(key string, rev uint64, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.kv.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil {
		log.Info("lease not released (it expires)", zap.Error(err))
		return
	}
	log.Info("lease released")
}

// Lock takes key for a short critical section (a table's write by one of
// several aggregators), waiting while another process holds it. It returns
// when the key is taken, with the time it was taken (the lock lasts the
// TTL from then) and the function that releases it.
func (l *Leases) Lock(ctx context.Context, key string) (taken time.Time, unlock func(), err error) {
	wait := 5 * time.Millisecond
	for {
		taken = time.Now()
		rev, err := l.kv.Create(ctx, key, []byte(l.holder))
		if err == nil {
			return taken, func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = l.kv.Delete(ctx, key, jetstream.LastRevision(rev)) // else it expires
			}, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return time.Time{}, nil, fmt.Errorf("lock %s: %w", key, err)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, l.ttl/10)
	}
}

// TTL is how long a lease or lock lasts without a renewal.
func (l *Leases) TTL() time.Duration { return l.ttl }

// Hold takes key, waiting while another process holds it, and keeps it,
// renewed every third of the TTL, until release is called: for work longer
// than the TTL that others must wait for (a rollup's fill). A renewal that
// fails is logged; the holder goes on, and others may take the key once it
// expired.
func (l *Leases) Hold(ctx context.Context, key string) (release func(), err error) {
	var rev uint64
	for {
		rev, err = l.kv.Create(ctx, key, []byte(l.holder))
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("lease %s: %w", key, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(l.ttl / 10):
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(l.ttl / 3)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				rctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
				next, err := l.kv.Update(rctx, key, []byte(l.holder), rev)
				cancel()
				if err != nil {
					l.log.Warn("lease not renewed", zap.String("lease", key), zap.Error(err))
					continue
				}
				rev = next
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		l.release(key, rev, l.log.With(zap.String("lease", key)))
	}, nil
}
