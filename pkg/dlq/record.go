package dlq

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"

	"github.com/iochub/iochub/pkg/pii"
)

// HeaderEncrypted marks a dead letter whose body is a connector's record
// encrypted with RecordCipher: it says the algorithm and key version.
const HeaderEncrypted = "Iochub-Record-Encrypted"

// recordCipherID names the algorithm and the key's derivation.
const recordCipherID = "aes-256-gcm;dlq-record-v1"

// ErrNoRecordKey is returned when an encrypted record is opened without the key.
var ErrNoRecordKey = errors.New("the record is encrypted with the hub's key")

// RecordCipher encrypts the raw records connectors dead-letter: a record
// holds what the sector system sent, names and phone numbers included, and
// IOC_DLQ keeps it only encrypted, under a key derived from the hub's
// personal-data key (so only the hub, never a reader of the stream, opens
// it). AES-256-GCM, a random nonce before the ciphertext.
type RecordCipher struct {
	aead cipher.AEAD
}

// NewRecordCipher derives the record key from p.
func NewRecordCipher(p *pii.Pseudonymizer) (*RecordCipher, error) {
	block, err := aes.NewCipher(p.Derive("dlq-record-v1"))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &RecordCipher{aead: aead}, nil
}

// Seal encrypts data; the connector's name is bound to it.
func (c *RecordCipher) Seal(connector string, data []byte) []byte {
	nonce := make([]byte, c.aead.NonceSize(), c.aead.NonceSize()+len(data)+c.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Sprintf("dlq: no randomness for a nonce: %v", err))
	}
	return c.aead.Seal(nonce, nonce, data, []byte(connector))
}

// Open decrypts what Seal made for connector.
func (c *RecordCipher) Open(connector string, b []byte) ([]byte, error) {
	n := c.aead.NonceSize()
	if len(b) < n+c.aead.Overhead() {
		return nil, errors.New("dlq: encrypted record too short")
	}
	out, err := c.aead.Open(nil, b[:n], b[n:], []byte(connector))
	if err != nil {
		return nil, fmt.Errorf("dlq: the record does not open with this key: %w", err)
	}
	return out, nil
}

var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// RedactReason drops the values a mapping error quotes ("…" in Go's %q
// style), keeping the field names and what was wanted: a reason past the
// edge never repeats what the record held.
func RedactReason(reason string) string {
	return quoted.ReplaceAllString(reason, `"‹…›"`)
}
