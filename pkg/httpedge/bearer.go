package httpedge

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Why a request's credential was refused; a *CredentialError wraps one.
var (
	ErrNoCredential        = errors.New("no credential")
	ErrMalformedCredential = errors.New("malformed credential")
	ErrUnknownCredential   = errors.New("unknown credential")
)

// CredentialError is a refused credential: Reason is one of the sentinel
// errors above, Kind what credential was wanted ("producer", "reader",
// "admin").
type CredentialError struct {
	Reason error
	Kind   string
}

func (e *CredentialError) Error() string { return fmt.Sprintf("%s: want a %s token", e.Reason, e.Kind) }
func (e *CredentialError) Unwrap() error { return e.Reason }

// Problem is the 401 answer for e.
func (e *CredentialError) Problem() Problem {
	p := Problem{Type: ProblemUnauthorized, Status: http.StatusUnauthorized}
	switch {
	case errors.Is(e.Reason, ErrNoCredential):
		p.Title, p.Detail = "Missing credential", "send Authorization: Bearer <"+e.Kind+" token>"
	case errors.Is(e.Reason, ErrMalformedCredential):
		p.Title, p.Detail = "Malformed credential", `the Authorization header must be "Bearer <`+e.Kind+` token>"`
	default:
		p.Title, p.Detail = "Unknown credential", "the bearer token is not a "+e.Kind+" token of this hub"
	}
	return p
}

// BearerToken is the token of r's Authorization header. The scheme is
// matched in any letter case (RFC 9110 §11.1); surrounding spaces are not
// part of the token.
func BearerToken(r *http.Request) (string, error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return "", ErrNoCredential
	}
	scheme, token, ok := strings.Cut(auth, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", ErrMalformedCredential
	}
	return token, nil
}

// Keyring holds the credentials of one kind, each known by the SHA-256 of
// its token; T carries what the credential may do (scopes, sectors, roles)
// as data.
type Keyring[T any] struct {
	kind    string
	sums    [][]byte
	entries []T
}

// NewKeyring keeps entries, each known by sum(entry), the hex SHA-256 of its
// token (in either letter case).
func NewKeyring[T any](kind string, entries []T, sum func(T) string) *Keyring[T] {
	k := &Keyring[T]{kind: kind, entries: entries}
	for _, e := range entries {
		k.sums = append(k.sums, []byte(strings.ToLower(strings.TrimSpace(sum(e)))))
	}
	return k
}

// Len is the number of credentials.
func (k *Keyring[T]) Len() int { return len(k.entries) }

// Authenticate finds the credential r's bearer token belongs to. Every
// stored hash is compared, in constant time, whatever matches. A refusal is
// a *CredentialError.
func (k *Keyring[T]) Authenticate(r *http.Request) (T, error) {
	var zero T
	token, err := BearerToken(r)
	if err != nil {
		return zero, &CredentialError{Reason: err, Kind: k.kind}
	}
	sum := []byte(HashToken(token))
	found := -1
	for i, s := range k.sums {
		if subtle.ConstantTimeCompare(s, sum) == 1 && found < 0 {
			found = i
		}
	}
	if found < 0 {
		return zero, &CredentialError{Reason: ErrUnknownCredential, Kind: k.kind}
	}
	return k.entries[found], nil
}

// Require runs next with the request's credential, or answers 401 with the
// problem document of the refusal.
func (k *Keyring[T]) Require(next func(http.ResponseWriter, *http.Request, T)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		who, err := k.Authenticate(r)
		if err != nil {
			var ce *CredentialError
			errors.As(err, &ce)
			Challenge(w)
			ce.Problem().Write(w)
			return
		}
		next(w, r, who)
	}
}
