package schema

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/message"
)

// Schemas compiled to code (issue #13): internal/schemagen turns each
// schema of schemas/ into a Go function that checks decoded data for
// exactly the keywords our schemas use, with the reference validator's
// verdict, pointers and rules (TestCompiledAgreesWithTheReference,
// FuzzCompiledAgreesWithTheReference). A type uses its compiled function
// only when the schema it was generated from is byte for byte the one
// loaded (its SHA-256); otherwise the reference validator
// (santhosh-tekuri/jsonschema) checks it.
//
//go:generate go run ../../internal/schemagen -out zz_compiled.go

// compiledSchema is one generated validator and the digest of its schema.
type compiledSchema struct {
	digest   string
	validate func(v any) []Violation
}

// compiled holds the generated validators by type name (zz_compiled.go).
var compiled = map[string]compiledSchema{}

// The helpers below are what generated code calls; each builds the
// violation the reference validator reports, message included.

func cTypeViolation(ptr string, v any, want ...string) Violation {
	return Violation{Pointer: ptr, Rule: "type", Message: (&kind.Type{Got: cTypeOf(v), Want: want}).LocalizedString(printer)}
}

// cTypeOf names a decoded JSON value's type as the reference does.
func cTypeOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number, float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func cIsObj(v any) bool  { _, ok := v.(map[string]any); return ok }
func cIsStr(v any) bool  { _, ok := v.(string); return ok }
func cIsBool(v any) bool { _, ok := v.(bool); return ok }
func cIsNum(v any) bool  { _, ok := v.(json.Number); return ok }

// cIsInteger: a number with no fractional part (12.0 and 1.2e1 are integers).
func cIsInteger(v any) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	s := string(n)
	if !strings.ContainsAny(s, "eE") {
		_, frac, _ := strings.Cut(s, ".")
		return strings.Trim(frac, "0") == ""
	}
	r, ok := new(big.Rat).SetString(s)
	return ok && r.IsInt()
}

func cRequired(ptr string, obj map[string]any, names []string) (Violation, bool) {
	var missing []string
	for _, n := range names {
		if _, ok := obj[n]; !ok {
			missing = append(missing, n)
		}
	}
	if missing == nil {
		return Violation{}, false
	}
	return Violation{Pointer: ptr, Rule: "required", Message: (&kind.Required{Missing: missing}).LocalizedString(printer)}, true
}

func cAdditional(ptr string, extra []string) Violation {
	return Violation{Pointer: ptr, Rule: "additionalProperties", Message: (&kind.AdditionalProperties{Properties: extra}).LocalizedString(printer)}
}

func cEnum(ptr string, v any, want []any) Violation {
	return Violation{Pointer: ptr, Rule: "enum", Message: (&kind.Enum{Got: v, Want: want}).LocalizedString(printer)}
}

// cStrLen appends the minLength and maxLength violations of s (a bound < 0
// is absent); lengths count code points.
func cStrLen(out []Violation, ptr, s string, minLen, maxLen int) []Violation {
	n := utf8.RuneCountInString(s)
	if minLen >= 0 && n < minLen {
		out = append(out, Violation{Pointer: ptr, Rule: "minLength", Message: (&kind.MinLength{Got: n, Want: minLen}).LocalizedString(printer)})
	}
	if maxLen >= 0 && n > maxLen {
		out = append(out, Violation{Pointer: ptr, Rule: "maxLength", Message: (&kind.MaxLength{Got: n, Want: maxLen}).LocalizedString(printer)})
	}
	return out
}

func cPattern(ptr, s, pattern string) Violation {
	return Violation{Pointer: ptr, Rule: "pattern", Message: (&kind.Pattern{Got: s, Want: pattern}).LocalizedString(printer)}
}

// cNumCmp compares a decoded number with a schema's bound (a literal);
// ok is false when v is not a number.
func cNumCmp(v any, bound string) (cmp int, ok bool) {
	n, isNum := v.(json.Number)
	if !isNum {
		return 0, false
	}
	if a, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		if b, err := strconv.ParseInt(bound, 10, 64); err == nil {
			switch {
			case a < b:
				return -1, true
			case a > b:
				return 1, true
			}
			return 0, true
		}
	}
	// Rounding to float64 keeps order: distinct floats order the numbers;
	// equal ones (or out of range) need exact arithmetic.
	if fa, err := strconv.ParseFloat(string(n), 64); err == nil {
		if fb, err := strconv.ParseFloat(bound, 64); err == nil {
			switch {
			case fa < fb:
				return -1, true
			case fa > fb:
				return 1, true
			}
		}
	}
	a, okA := new(big.Rat).SetString(string(n))
	b, okB := new(big.Rat).SetString(bound)
	if !okA || !okB {
		return 0, false
	}
	return a.Cmp(b), true
}

func cBound(ptr, rule string, v any, bound string) Violation {
	got, _ := new(big.Rat).SetString(fmt.Sprint(v))
	want, _ := new(big.Rat).SetString(bound)
	var k interface{ LocalizedString(*message.Printer) string }
	if rule == "minimum" {
		k = &kind.Minimum{Got: got, Want: want}
	} else {
		k = &kind.Maximum{Got: got, Want: want}
	}
	return Violation{Pointer: ptr, Rule: rule, Message: k.LocalizedString(printer)}
}

func cFormat(ptr string, v any, name string, err error) Violation {
	return Violation{Pointer: ptr, Rule: "format", Message: (&kind.Format{Got: v, Want: name, Err: err}).LocalizedString(printer)}
}

// cDate is the reference's "date" format: Go's 2006-01-02.
func cDate(s string) error {
	_, err := time.Parse("2006-01-02", s)
	return err
}

// cDateTime is the reference's "date-time" format (RFC 3339 section 5.6,
// a leap second only at 23:59 UTC).
func cDateTime(s string) error {
	if len(s) < 20 {
		return fmt.Errorf("less than 20 characters long")
	}
	if s[10] != 't' && s[10] != 'T' {
		return fmt.Errorf("11th character must be t or T")
	}
	if err := cDate(s[:10]); err != nil {
		return fmt.Errorf("invalid date element: %v", err)
	}
	if err := cTime(s[11:]); err != nil {
		return fmt.Errorf("invalid time element: %v", err)
	}
	return nil
}

func cTime(str string) error {
	if len(str) < 9 {
		return fmt.Errorf("less than 9 characters long")
	}
	if str[2] != ':' || str[5] != ':' {
		return fmt.Errorf("missing colon in correct place")
	}
	var hms [3]int
	for i, tok := range [3]string{str[0:2], str[3:5], str[6:8]} { // what SplitN(str[:8], ":", 3) gives, colons at 2 and 5
		n, err := strconv.Atoi(tok)
		if err != nil {
			return fmt.Errorf("invalid hour/min/sec")
		}
		if n < 0 {
			return fmt.Errorf("non-positive hour/min/sec")
		}
		hms[i] = n
	}
	h, m, sec := hms[0], hms[1], hms[2]
	if h > 23 || m > 59 || sec > 60 {
		return fmt.Errorf("hour/min/sec out of range")
	}
	str = str[8:]
	if rem, ok := strings.CutPrefix(str, "."); ok {
		digits := 0
		for _, ch := range rem {
			if ch < '0' || ch > '9' {
				break
			}
			digits++
		}
		if digits == 0 {
			return fmt.Errorf("no digits in second fraction")
		}
		str = rem[digits:]
	}
	if str != "z" && str != "Z" {
		if len(str) != 6 {
			return fmt.Errorf("offset must be 6 characters long")
		}
		var sign int
		switch str[0] {
		case '+':
			sign = -1
		case '-':
			sign = +1
		default:
			return fmt.Errorf("offset must begin with plus/minus")
		}
		str = str[1:]
		if str[2] != ':' {
			return fmt.Errorf("missing colon in offset in correct place")
		}
		var zhm [2]int
		for i, tok := range [2]string{str[0:2], str[3:]} { // SplitN(str, ":", 2), the colon at 2
			n, err := strconv.Atoi(tok)
			if err != nil {
				return fmt.Errorf("invalid hour/min in offset")
			}
			if n < 0 {
				return fmt.Errorf("non-positive hour/min in offset")
			}
			zhm[i] = n
		}
		if zhm[0] > 23 || zhm[1] > 59 {
			return fmt.Errorf("hour/min in offset out of range")
		}
		hm := (h*60 + m) + sign*(zhm[0]*60+zhm[1])
		if hm < 0 {
			hm += 24 * 60
		}
		h, m = hm/60, hm%60
	}
	if sec >= 60 && (h != 23 || m != 59) {
		return fmt.Errorf("invalid leap second")
	}
	return nil
}
