// Package httpedge is what every HTTP listener of the hub shares: bearer-token
// credentials (only the SHA-256 of a token is kept, compared in constant
// time), problem documents (RFC 9457), JSON answers, and the server settings
// that bound how long a client may hold a connection.
//
// The gateway, iocapi, the monitor, the connectors' webhooks and the debug
// listener all use it, so a rule about credentials or timeouts is written
// once.
package httpedge

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// HashToken is the SHA-256 of a token in lower-case hex, as the config file
// stores it (token_sha256).
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Problem is a problem document (RFC 9457).
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Problem types shared by every listener, the "type" member of a problem
// document; a service adds its own.
const (
	ProblemUnauthorized = "urn:iochub:problem:unauthorized"
	ProblemForbidden    = "urn:iochub:problem:forbidden"
	ProblemUnavailable  = "urn:iochub:problem:unavailable"
)

// WriteJSON answers status with body as JSON. Answers are never cached:
// they carry live figures or per-caller results.
func WriteJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// Challenge says, on a 401, which scheme the credential must use.
func Challenge(w http.ResponseWriter) { w.Header().Set("WWW-Authenticate", `Bearer realm="iochub"`) }

// WriteProblem answers status with body, a problem document or a richer
// body that is one (the gateway's carries each event's result), as
// application/problem+json.
func WriteProblem(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// Write answers with p.
func (p Problem) Write(w http.ResponseWriter) { WriteProblem(w, p.Status, p) }

// ServerConfig bounds how long a client may take over each part of an
// exchange, so that a slow or stalled client (one header byte a second)
// holds a connection for a bounded time.
type ServerConfig struct {
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"` // the request line and headers
	ReadTimeout       time.Duration `yaml:"read_timeout"`        // the whole request, body included
	WriteTimeout      time.Duration `yaml:"write_timeout"`       // from the end of the headers to the end of the answer
	IdleTimeout       time.Duration `yaml:"idle_timeout"`        // a kept-alive connection between requests
	MaxHeaderBytes    int           `yaml:"max_header_bytes"`
	// MaxConnections bounds the connections a listener holds open at once
	// (idle keep-alive ones included); beyond it new ones wait to be
	// accepted.
	MaxConnections int `yaml:"max_connections"`
}

// DefaultServerConfig: generous for a sector system on a slow provincial
// link sending a full batch, short enough that stalled clients cannot pile
// up. The write timeout leaves room for a 30-second profile on the debug
// listener.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		MaxConnections:    1024,
	}
}

// withDefaults fills the zero fields of c from DefaultServerConfig.
func (c ServerConfig) withDefaults() ServerConfig {
	d := DefaultServerConfig()
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = d.ReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = d.MaxConnections
	}
	return c
}

// Listen opens a TCP listener on addr that holds at most c.MaxConnections
// connections at once: a thousand idle or slow clients cannot take every
// file descriptor of the hub. Every listener of the hub is opened here.
func Listen(addr string, c ServerConfig) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return netutil.LimitListener(l, c.withDefaults().MaxConnections), nil
}

// NewServer is an http.Server for h with every timeout and limit of c (the
// zero ones from DefaultServerConfig). Every listener of the hub is made
// here.
func NewServer(h http.Handler, c ServerConfig) *http.Server {
	c = c.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
	}
}
