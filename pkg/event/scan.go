package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// The envelope is read with a scanner over JSON already checked by
// json.Valid: it splits an object into its members (an array into its
// elements) without decoding them, so Parse costs one validation pass and
// one scan, with the data and extension values left as slices of the input.

var errNotObject = errors.New("not an object")

// members calls fn with each member of the object at b (valid JSON): the key
// as it is written (quotes removed, escapes kept; escaped reports a
// backslash) and the raw value.
func members(b []byte, fn func(key []byte, escaped bool, val []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errNotObject
	}
	i++
	for {
		i = skipSpace(b, i)
		if b[i] == '}' {
			return nil
		}
		end := stringEnd(b, i)
		key, escaped := b[i+1:end-1], bytes.IndexByte(b[i+1:end-1], '\\') >= 0
		i = skipSpace(b, end)
		i = skipSpace(b, i+1) // the colon
		vend := valueEnd(b, i)
		if err := fn(key, escaped, b[i:vend]); err != nil {
			return err
		}
		i = skipSpace(b, vend)
		if b[i] == ',' {
			i++
		}
	}
}

// elements calls fn with each element of the array at b (valid JSON); it
// reports false when b is not an array.
func elements(b []byte, fn func(val []byte)) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return false
	}
	i++
	for {
		i = skipSpace(b, i)
		if b[i] == ']' {
			return true
		}
		end := valueEnd(b, i)
		fn(b[i:end])
		i = skipSpace(b, end)
		if b[i] == ',' {
			i++
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd is the index just past the string starting at b[i] == '"'.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd is the index just past the value starting at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

// stringValue decodes a JSON string value; ok is false when raw is not a string.
func stringValue(raw []byte) (s string, ok bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}
