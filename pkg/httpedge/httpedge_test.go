package httpedge_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iochub/iochub/internal/polltest"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/httpedge/httpedgetest"
)

type reader struct{ name, sum string }

func TestKeyringAuthenticate(t *testing.T) {
	ring := httpedge.NewKeyring("reader", []reader{
		{"leader", httpedge.HashToken("leader-token")},
		{"health", strings.ToUpper(httpedge.HashToken("health-token"))}, // a hash in upper case is the same hash
	}, func(r reader) string { return r.sum })
	tests := []struct {
		name    string
		auth    string
		want    string
		wantErr error
	}{
		{"bearer", "Bearer leader-token", "leader", nil},
		{"scheme in any letter case", "bEARER health-token", "health", nil},
		{"spaces around the token", "Bearer   leader-token  ", "leader", nil},
		{"no header", "", "", httpedge.ErrNoCredential},
		{"another scheme", "Basic bGVhZGVy", "", httpedge.ErrMalformedCredential},
		{"no token", "Bearer ", "", httpedge.ErrMalformedCredential},
		{"unknown token", "Bearer nope", "", httpedge.ErrUnknownCredential},
		{"hash as token", "Bearer " + httpedge.HashToken("leader-token"), "", httpedge.ErrUnknownCredential},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			got, err := ring.Authenticate(r)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got.name != tt.want {
				t.Fatalf("credential %q, want %q", got.name, tt.want)
			}
			var ce *httpedge.CredentialError
			if err != nil && (!errors.As(err, &ce) || ce.Kind != "reader") {
				t.Fatalf("err %v is not a reader CredentialError", err)
			}
		})
	}
}

func TestRequireAnswersAProblem(t *testing.T) {
	ring := httpedge.NewKeyring("admin", []reader{{"ops", httpedge.HashToken("ops-token")}}, func(r reader) string { return r.sum })
	h := ring.Require(func(w http.ResponseWriter, _ *http.Request, who reader) {
		httpedge.WriteJSON(w, 200, map[string]string{"who": who.name})
	})
	for _, tt := range []struct {
		auth, wantBody string
		want           int
	}{
		{"Bearer ops-token", `"who":"ops"`, 200},
		{"", "Authorization: Bearer", 401},
		{"Bearer wrong", "not a admin token", 401},
	} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/", nil)
		if tt.auth != "" {
			r.Header.Set("Authorization", tt.auth)
		}
		h(rec, r)
		if rec.Code != tt.want || !strings.Contains(rec.Body.String(), tt.wantBody) {
			t.Errorf("%q: %d %s, want %d with %q", tt.auth, rec.Code, rec.Body, tt.want, tt.wantBody)
		}
		if tt.want == 401 {
			if rec.Header().Get("WWW-Authenticate") == "" || rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("%q: 401 headers %v", tt.auth, rec.Header())
			}
		}
	}
}

func TestNewServerSetsEveryTimeout(t *testing.T) {
	s := httpedge.NewServer(http.NotFoundHandler(), httpedge.ServerConfig{ReadHeaderTimeout: time.Second})
	if s.ReadHeaderTimeout != time.Second || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
		t.Fatalf("server settings %+v: a timeout or limit is unset", s)
	}
}

// TestSlowHeadersAreCutOff: a client that sends its headers one byte a
// second (slowloris) has its connection closed once the read-header timeout
// passes, whatever it still sends.
func TestSlowHeadersAreCutOff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpedge.NewServer(http.NotFoundHandler(), httpedge.ServerConfig{ReadHeaderTimeout: 2 * time.Second})
	go func() { _ = srv.Serve(ln) }() // returns when Close is called below
	t.Cleanup(func() { _ = srv.Close() })
	httpedgetest.SlowHeadersAreCutOff(t, ln.Addr().String())
}

// TestListenerHoldsAtMostMaxConnections (finding H4): with the listener
// full of idle keep-alive connections, a new client is not served; once one
// of them goes, it is.
func TestListenerHoldsAtMostMaxConnections(t *testing.T) {
	cfg := httpedge.ServerConfig{MaxConnections: 2}
	ln, err := httpedge.Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httpedge.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }), cfg)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	url := "http://" + ln.Addr().String() + "/"
	var held []*http.Client
	for range 2 { // two clients, each keeping its connection open after an answer
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		res, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(res.Body)
		res.Body.Close()
		held = append(held, c)
	}
	third := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 500 * time.Millisecond}
	if res, err := third.Get(url); err == nil {
		res.Body.Close()
		t.Fatal("a third connection was served while two were held")
	}
	held[0].CloseIdleConnections()
	third.Timeout = 5 * time.Second
	polltest.Until(t, "the third client served once a connection went", 20*time.Second, func() error {
		res, err := third.Get(url)
		if err != nil {
			return err
		}
		res.Body.Close()
		return nil
	})
}
