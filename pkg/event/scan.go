package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
func stringValue(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	var s string // on the heap (Unmarshal takes its address): only here
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// DecodeValue decodes JSON the way encoding/json decodes into an any with
// UseNumber (objects map[string]any, arrays []any, numbers json.Number,
// strings with invalid UTF-8 replaced by U+FFFD, the last of duplicate keys
// kept), in one validation pass and one scan: the data of every event is
// decoded with it (schema.DecodeData). FuzzDecodeValue holds it to
// encoding/json's result.
func DecodeValue(b []byte) (any, error) {
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return nil, err
	}
	v, _ := decodeValid(b, skipSpace(b, 0))
	return v, nil
}

// decodeValid decodes the value at b[i] of valid JSON and returns it and
// the index just past it.
func decodeValid(b []byte, i int) (any, int) {
	switch b[i] {
	case '{':
		hint := 0
		if i == skipSpace(b, 0) { // an event's data: ten to twenty members, one table's worth of room at once
			hint = 16
		}
		obj := make(map[string]any, hint)
		i = skipSpace(b, i+1)
		if b[i] == '}' {
			return obj, i + 1
		}
		for {
			end := stringEnd(b, i)
			key, _ := stringValue(b[i:end])
			i = skipSpace(b, end)
			i = skipSpace(b, i+1) // the colon
			var v any
			v, i = decodeValid(b, i)
			obj[key] = v
			i = skipSpace(b, i)
			if b[i] == '}' {
				return obj, i + 1
			}
			i = skipSpace(b, i+1) // the comma
		}
	case '[':
		arr := []any{}
		i = skipSpace(b, i+1)
		if b[i] == ']' {
			return arr, i + 1
		}
		for {
			var v any
			v, i = decodeValid(b, i)
			arr = append(arr, v)
			i = skipSpace(b, i)
			if b[i] == ']' {
				return arr, i + 1
			}
			i = skipSpace(b, i+1)
		}
	case '"':
		end := stringEnd(b, i)
		s, _ := stringValue(b[i:end])
		return s, end
	case 't':
		return true, i + 4
	case 'f':
		return false, i + 5
	case 'n':
		return nil, i + 4
	}
	end := valueEnd(b, i)
	return json.Number(b[i:end]), end
}

// AppendValue appends the JSON of v, a value as DecodeValue makes them
// (objects with their keys sorted, as encoding/json writes them); any other
// Go value is written by encoding/json. The pseudonymized data of an event
// is written with it. FuzzAppendValue holds DecodeValue(AppendValue(v)) to v.
func AppendValue(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		if x {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case string:
		return appendString(dst, x), nil
	case json.Number:
		if x == "" || (x[0] != '-' && (x[0] < '0' || x[0] > '9')) || !json.Valid([]byte(x)) { // a number, nothing else
			return nil, fmt.Errorf("invalid number literal %q", string(x))
		}
		return append(dst, x...), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = AppendValue(dst, e); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = AppendValue(dst, x[k]); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(dst, b...), nil
}
