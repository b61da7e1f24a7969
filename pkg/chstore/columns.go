package chstore

import (
	"fmt"
	"strings"
	"time"
)

// columnar turns rows (as Row builds them) into one typed slice per column,
// the form the driver's column-oriented batch API takes whole: no
// reflection and no per-value type switch inside the driver. It reports
// ok=false for a column whose values are of a Go type it does not know;
// Insert then appends row by row, as before. A value of the wrong type for
// its column (a row that disagrees with the column's other rows) is an
// ErrBadValue naming the row, the column and the type.
func columnar(cols, types []string, rows [][]any) (out []any, ok bool, err error) {
	out = make([]any, len(cols))
	for j := range cols {
		nullable := isNullable(types[j])
		var sample any
		for _, r := range rows {
			if r[j] != nil {
				sample = r[j]
				break
			}
		}
		var col any
		switch sample.(type) {
		case string, *string:
			col, err = gather[string](rows, j, nullable)
		case time.Time, *time.Time:
			col, err = gather[time.Time](rows, j, nullable)
		case int64, *int64:
			col, err = gather[int64](rows, j, nullable)
		case uint64, *uint64:
			col, err = gather[uint64](rows, j, nullable)
		case float64, *float64:
			col, err = gather[float64](rows, j, nullable)
		case uint8, *uint8:
			col, err = gather[uint8](rows, j, nullable)
		case nil: // every value NULL
			if !nullable {
				return nil, false, fmt.Errorf("column %s: %w: row 0: required value is missing", cols[j], ErrBadValue)
			}
			if col = allNull(types[j], len(rows)); col == nil {
				return nil, false, nil
			}
		default:
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("column %s: %w", cols[j], err)
		}
		out[j] = col
	}
	return out, true, nil
}

// gather is column j of rows as a []T, or a []*T for a Nullable column.
// Row puts T in a plain column and *T (or nil) in a Nullable one.
func gather[T any](rows [][]any, j int, nullable bool) (any, error) {
	if nullable {
		col := make([]*T, len(rows))
		for i, r := range rows {
			switch v := r[j].(type) {
			case nil:
			case *T:
				col[i] = v
			case T:
				col[i] = &v
			default:
				return nil, badType[T](i, v)
			}
		}
		return col, nil
	}
	col := make([]T, len(rows))
	for i, r := range rows {
		v, ok := r[j].(T)
		if !ok {
			return nil, badType[T](i, r[j])
		}
		col[i] = v
	}
	return col, nil
}

func badType[T any](row int, v any) error {
	var want T
	return fmt.Errorf("%w: row %d: want %T, got %T", ErrBadValue, row, want, v)
}

// allNull is n NULLs for a Nullable column of chType, or nil for a type
// Row never fills.
func allNull(chType string, n int) any {
	switch base := strings.TrimSuffix(strings.TrimPrefix(chType, "Nullable("), ")"); {
	case base == "String":
		return make([]*string, n)
	case base == "Int64":
		return make([]*int64, n)
	case base == "UInt64":
		return make([]*uint64, n)
	case base == "Float64":
		return make([]*float64, n)
	case base == "UInt8":
		return make([]*uint8, n)
	case base == "Date", strings.HasPrefix(base, "DateTime"):
		return make([]*time.Time, n)
	}
	return nil
}

// isNullable tells a Nullable(...) column type from the driver's name of it.
func isNullable(chType string) bool { return strings.HasPrefix(chType, "Nullable(") }
