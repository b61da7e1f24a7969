// Package httpedgetest checks a running listener against the limits
// httpedge sets.
package httpedgetest

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// SlowHeadersAreCutOff connects to addr and sends a request's headers one
// byte a second (a slowloris client); it fails the test unless the server
// closes the connection within a minute.
func SlowHeadersAreCutOff(t testing.TB, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	header := []byte("GET /healthz HTTP/1.1\r\nHost: iochub\r\nX-Slow: " + strings.Repeat("a", 200))
	buf := make([]byte, 512)
	start := time.Now()
	for i := 0; i < 60; i++ {
		if _, err := c.Write(header[i : i+1]); err != nil {
			t.Logf("connection closed after %s (write: %v)", time.Since(start).Round(time.Second), err)
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		var ne net.Error
		if n > 0 || (err != nil && !(errors.As(err, &ne) && ne.Timeout())) {
			t.Logf("connection closed after %s (%q, %v)", time.Since(start).Round(time.Second), buf[:n], err)
			return
		}
	}
	t.Fatal("a client sending one header byte a second kept its connection for a minute")
}

// SlowBodiesAreCutOff sends to addr a POST to path with its headers (hdr
// added) at once and its body one byte a second; it fails the test unless
// the server answers or closes the connection within a minute. It returns
// what the server answered, if anything.
func SlowBodiesAreCutOff(t testing.TB, addr, path string, hdr map[string]string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	head := "POST " + path + " HTTP/1.1\r\nHost: iochub\r\nContent-Length: 100000\r\n"
	for k, v := range hdr {
		head += k + ": " + v + "\r\n"
	}
	if _, err := c.Write([]byte(head + "\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	start := time.Now()
	for i := 0; i < 60; i++ {
		if _, err := c.Write([]byte("[")); err != nil {
			t.Logf("connection closed after %s (write: %v)", time.Since(start).Round(time.Second), err)
			return ""
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		var ne net.Error
		if n > 0 || (err != nil && !(errors.As(err, &ne) && ne.Timeout())) {
			t.Logf("answered or closed after %s (%q, %v)", time.Since(start).Round(time.Second), buf[:n], err)
			return string(buf[:n])
		}
	}
	t.Fatal("a client sending its body one byte a second kept its connection for a minute")
	return ""
}
