package chstore

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// TestClassify: ClickHouse's code 252 is two answers, told apart by their
// message: too many partitions in one insert is a rejection of that
// insert's shape (split it), too many unmerged parts is a busy server
// (retry). A server's refusal of the data stays neither.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		err                  error
		unavailable, tooMany bool
	}{
		{"partitions of one insert, current releases", &clickhouse.Exception{Code: 252, Name: "DB::Exception",
			Message: "Too many partitions for single INSERT block (more than 100). The limit is controlled by 'max_partitions_per_insert_block' setting. Large number of partitions is a common misconception."}, false, true},
		{"unmerged parts", &clickhouse.Exception{Code: 252, Name: "DB::Exception",
			Message: "Too many parts (300). Merges are processing significantly slower than inserts"}, true, false},
		{"timeout", &clickhouse.Exception{Code: 159, Message: "Timeout exceeded: elapsed 5 seconds"}, true, false},
		{"type mismatch", &clickhouse.Exception{Code: 53, Message: "Type mismatch in IN or VALUES section"}, false, false},
		{"wrapped", fmt.Errorf("send: %w", &clickhouse.Exception{Code: 252, Message: "Too many partitions for single INSERT block (more than 2)."}), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(tc.err)
			if got := errors.Is(err, ErrUnavailable); got != tc.unavailable {
				t.Errorf("ErrUnavailable = %v, want %v (%v)", got, tc.unavailable, err)
			}
			if got := errors.Is(err, ErrTooManyPartitions); got != tc.tooMany {
				t.Errorf("ErrTooManyPartitions = %v, want %v (%v)", got, tc.tooMany, err)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("%v does not wrap the server's answer", err)
			}
		})
	}
}
