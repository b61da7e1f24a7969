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
		// Answers of 18.16 to a quorum insert with a replica down (decision 0014).
		{"quorum not met", &clickhouse.Exception{Code: 319, Message: "Unknown status, client must retry. Reason: Code: 159, e.displayText() = DB::Exception: Timeout while waiting for quorum"}, true, false},
		{"too few live replicas", &clickhouse.Exception{Code: 285, Message: "Number of alive replicas (1) is less than requested quorum (2)."}, true, false},
		{"previous quorum pending", &clickhouse.Exception{Code: 286, Message: "Quorum for previous write has not been satisfied yet."}, true, false},
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
