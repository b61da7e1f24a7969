package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/services/iochub/internal/hub"
	"github.com/iochub/iochub/services/sharing"
)

// subscriberConn connects as a subscriber NATS user, collecting the
// server's permission violations.
type subscriberConn struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	mu         sync.Mutex
	violations []string
}

func connectSubscriber(t *testing.T, addr, user string) *subscriberConn {
	t.Helper()
	c := &subscriberConn{}
	nc, err := nats.Connect("nats://"+addr, nats.UserInfo(user, "dev-nats-password-not-for-production"), nats.CustomInboxPrefix(natsjs.ProducerInbox(user)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.violations = append(c.violations, err.Error())
			c.mu.Unlock()
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	c.nc = nc
	c.js, _ = jetstream.New(nc)
	return c
}

// refused waits for the server to report a violation naming subject: the
// server's answer, not a timeout, shows the door is shut.
func (c *subscriberConn) refused(t *testing.T, subject string) {
	t.Helper()
	waitFor(t, "the server refusing "+subject, 30*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return slices.ContainsFunc(c.violations, func(v string) bool { return strings.Contains(v, subject) })
	})
	t.Logf("refused: %s", subject)
}

// A subscription of mode nats fills the agency's own stream with what its
// grants allow (personal data pseudonymized, never in clear); the agency's
// NATS user reads and acks its consumer there, each identity once after
// its own dedup, and can read nothing else: not IOC_EVENTS, by any of the
// JetStream API's ways in, not the events' subjects, not another agency's
// stream.
func TestNATSSubscriberReadsItsOwnConsumerAndNothingElse(t *testing.T) {
	natsAddr := "127.0.0.1:" + freePort(t)
	_, base := startHubInProcess(t, chstoretest.NewDatabase(t), func(c *hub.Config) {
		c.NATS.Listen = natsAddr
		c.Services = "gateway,aggregator,sharing"
		c.AreasFile = "../../deploy/areas/bac-ninh.csv"
		c.NATS.Access.Users = append(c.NATS.Access.Users,
			natsjs.User{Name: "yte-system", Role: natsjs.RoleSubscriber, Agency: "so-y-te", PasswordBcrypt: devOpsHash},
			natsjs.User{Name: "ca-system", Role: natsjs.RoleSubscriber, Agency: "cong-an", PasswordBcrypt: devOpsHash})
		c.File.Sharing = sharing.Config{Agencies: []sharing.Agency{
			{Name: "so-y-te", TokenSHA256: httpedge.HashToken(healthAgencyToken), Grants: []sharing.Grant{
				{Types: []string{"vn.ioc.feedback.*"}, Areas: []string{"27"}},
			}},
			{Name: "cong-an", TokenSHA256: httpedge.HashToken(policeAgencyToken), Grants: []sharing.Grant{
				{Types: []string{"vn.ioc.traffic.*"}, Areas: []string{sharing.AllAreas}},
			}},
		}}
	})
	var place sharing.NATSPlace
	for _, s := range []struct{ token, name, typ string }{{healthAgencyToken, "yte-nats", "vn.ioc.feedback.*"}, {policeAgencyToken, "ca-nats", "vn.ioc.traffic.*"}} {
		code, b := sharingCall(t, base, s.token, "PUT", "/v1/subscriptions/"+s.name, map[string]any{"types": []string{s.typ}, "mode": "nats", "start": "beginning"})
		var sub sharing.Subscription
		if err := json.Unmarshal(b, &sub); code != http.StatusCreated || err != nil || sub.NATS == nil {
			t.Fatalf("PUT %s: %d %s", s.name, code, b)
		}
		if s.name == "yte-nats" {
			place = *sub.NATS
		}
	}
	if place.Stream != natsjs.ShareStream("so-y-te") || place.Consumer != "yte-nats" {
		t.Fatalf("the subscription is read at %+v", place)
	}

	evs, want := mix(17, "nats-sub", 300, "vn.ioc.feedback.")
	postBatch(t, base, evs)

	yte := connectSubscriber(t, natsAddr, "yte-system")
	cons, err := yte.js.Consumer(t.Context(), place.Stream, place.Consumer)
	if err != nil {
		t.Fatalf("the agency's user reading its consumer: %v", err)
	}
	clearPhone := regexp.MustCompile(`"09[0-9]{8}"`)
	seen := map[string]bool{}
	var got []string
	for deadline := time.Now().Add(90 * time.Second); len(seen) < len(want) && time.Now().Before(deadline); {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if loc := clearPhone.Find(m.Data()); loc != nil {
				t.Fatalf("a phone number in clear in the agency's stream: %s", loc)
			}
			var e event.Event
			if err := json.Unmarshal(m.Data(), &e); err != nil {
				t.Fatalf("not a CloudEvent: %v", err)
			}
			if id := e.Source + " " + e.ID; !seen[id] { // the agency's own dedup
				seen[id] = true
				got = append(got, id)
			}
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("the agency read %d events, want its %d in the log's order: %s", len(got), len(want), diff(got, want))
	}

	waitFor(t, "the status to show every event handed over and acked", 30*time.Second, func() bool {
		_, b := sharingCall(t, base, healthAgencyToken, "GET", "/v1/subscriptions/yte-nats", nil)
		var st sharing.SubscriptionStatus
		return json.Unmarshal(b, &st) == nil && st.Push != nil && st.Push.Delivered == uint64(len(want)) && st.NATSPending != nil && *st.NATSPending == 0
	})

	// Every other way in is refused by the server.
	// (Each denied request waits out its own short context: the server
	// drops it and says so on the connection.)
	ctx := func() context.Context {
		c, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		t.Cleanup(cancel)
		return c
	}
	if _, err := yte.js.Consumer(ctx(), natsjs.EventsStream, sharing.ConsumerPrefix+"yte-nats"); err == nil {
		t.Error("the agency's user read its subscription's consumer on IOC_EVENTS")
	}
	yte.refused(t, "$JS.API.CONSUMER.INFO."+natsjs.EventsStream)
	if oc, err := yte.js.OrderedConsumer(ctx(), natsjs.EventsStream, jetstream.OrderedConsumerConfig{}); err == nil {
		if b, err := oc.Fetch(1, jetstream.FetchMaxWait(time.Second)); err == nil && len(b.Messages()) > 0 { // made when first fetched
			for range b.Messages() {
				t.Error("the agency's user read IOC_EVENTS through a consumer of its own")
			}
		}
	}
	yte.refused(t, "$JS.API.CONSUMER.CREATE."+natsjs.EventsStream)
	if _, err := yte.nc.RequestWithContext(ctx(), "$JS.API.DIRECT.GET."+natsjs.EventsStream, []byte(`{"seq":1}`)); err == nil {
		t.Error("the agency's user read IOC_EVENTS' first message")
	}
	yte.refused(t, "$JS.API.DIRECT.GET."+natsjs.EventsStream)
	if _, err := yte.js.Consumer(ctx(), natsjs.ShareStream("cong-an"), "ca-nats"); err == nil {
		t.Error("the agency's user read another agency's consumer")
	}
	yte.refused(t, "$JS.API.CONSUMER.INFO."+natsjs.ShareStream("cong-an"))
	if _, err := yte.nc.RequestWithContext(ctx(), "$JS.API.CONSUMER.MSG.NEXT."+natsjs.ShareStream("cong-an")+".ca-nats", []byte(`{"batch":1}`)); err == nil {
		t.Error("the agency's user pulled another agency's consumer")
	}
	yte.refused(t, "$JS.API.CONSUMER.MSG.NEXT."+natsjs.ShareStream("cong-an"))
	if _, err := yte.nc.SubscribeSync("ioc.>"); err == nil {
		yte.refused(t, `"ioc.>"`)
	}
	if _, err := yte.js.CreateOrUpdateConsumer(ctx(), place.Stream, jetstream.ConsumerConfig{Durable: "mine"}); err == nil {
		t.Error("the agency's user made a consumer of its own")
	}
	yte.refused(t, "$JS.API.CONSUMER.CREATE."+place.Stream)
}
