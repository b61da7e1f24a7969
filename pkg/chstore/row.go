package chstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/schema"
)

// ErrBadValue is matched by errors for data that cannot become a typed row.
var ErrBadValue = errors.New("value does not fit its column")

// Row builds the values of one raw-table row, in Columns(t) order, from the
// envelope, the stream sequence and data decoded with schema.DecodeData (and
// already pseudonymized).
func Row(t *schema.Type, e event.Event, seq uint64, ingest time.Time, data any) ([]any, error) {
	row := make([]any, 0, len(EnvelopeColumns)+len(t.Columns))
	row = append(row, e.ID, e.Source, e.Subject, e.Time.UTC(), ingest.UTC(), seq, e.Extension("traceparent"), extensionsJSON(e))
	obj, ok := data.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: data must be a JSON object", ErrBadValue)
	}
	for _, c := range t.Columns {
		v := schema.ValueAt(obj, c.Path)
		cv, err := convert(c, v)
		if err != nil {
			return nil, fmt.Errorf("%w: /%s: %v", ErrBadValue, strings.Join(c.Path, "/"), err)
		}
		row = append(row, cv)
	}
	return row, nil
}

func convert(c schema.Column, v any) (any, error) {
	if v == nil {
		if c.Nullable {
			return nil, nil
		}
		return nil, errors.New("required value is missing")
	}
	out, err := typed(c.Kind, v)
	if err != nil || !c.Nullable {
		return out, err
	}
	// Nullable columns take pointers.
	switch x := out.(type) {
	case string:
		return &x, nil
	case int64:
		return &x, nil
	case float64:
		return &x, nil
	case uint8:
		return &x, nil
	case time.Time:
		return &x, nil
	}
	return out, nil
}

func typed(k schema.Kind, v any) (any, error) {
	switch k {
	case schema.KindString:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a string, got %T", v)
		}
		return s, nil
	case schema.KindInt:
		return schema.Int64(v)
	case schema.KindFloat:
		return schema.Float64(v)
	case schema.KindBool:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("want a boolean, got %T", v)
		}
		if b {
			return uint8(1), nil
		}
		return uint8(0), nil
	case schema.KindDateTime:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a date-time string, got %T", v)
		}
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, fmt.Errorf("want an RFC 3339 date-time, got %q", s)
		}
		return ts.UTC(), nil
	case schema.KindDate:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a date string, got %T", v)
		}
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return nil, fmt.Errorf("want a YYYY-MM-DD date, got %q", s)
		}
		return d, nil
	}
	return nil, fmt.Errorf("unknown column kind %d", k)
}

// extensionsJSON is the extensions column: the extension attributes, and
// dataschema, as one JSON object.
func extensionsJSON(e event.Event) string {
	if e.DataSchema != "" {
		ext := make(map[string]json.RawMessage, len(e.Extensions)+1)
		for k, v := range e.Extensions {
			ext[k] = v
		}
		e.Extensions = ext // e is a copy; its map is the caller's
		e.SetExtension("dataschema", e.DataSchema)
	}
	return e.ExtensionsJSON()
}
