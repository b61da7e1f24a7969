// Package csvdir reads CSV exports dropped into a directory: files taken
// oldest name first, each row a record carrying its file's header (so a
// dead letter shows both), each file processed once and then moved into
// done/. Resumes mid-file after a restart from the checkpoint
// "<file>:<line>". The education and bed-occupancy connectors use it.
package csvdir

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/iochub/iochub/pkg/connector"
)

// Source reads the exports in Dir, oldest name first, every Poll. A
// record's Version ends in "@<unix seconds>", the file's modification time:
// ExportTime reads it.
type Source struct {
	Dir  string
	Poll time.Duration // default 2 s

	skipFile string // from the checkpoint: this file's lines up to skipLine are done
	skipLine int
	file     string   // the file being read
	lines    [][]byte // its rows, after the header
	header   []byte
	next     int // index in lines of the next row
	modTime  time.Time
}

type ref struct {
	file string
	last bool
}

// Connect checks the directory is there and resumes after the checkpoint
// "<file>:<line>".
func (s *Source) Connect(_ context.Context, checkpoint string) error {
	if st, err := os.Stat(s.Dir); err != nil || !st.IsDir() {
		return fmt.Errorf("%w: export directory %s: %v", connector.ErrUnavailable, s.Dir, err)
	}
	if err := os.MkdirAll(filepath.Join(s.Dir, "done"), 0o755); err != nil {
		return fmt.Errorf("%w: %v", connector.ErrUnavailable, err)
	}
	s.file, s.lines, s.skipFile, s.skipLine = "", nil, "", 0
	if checkpoint != "" {
		i := strings.LastIndexByte(checkpoint, ':')
		n, err := strconv.Atoi(checkpoint[i+1:])
		if i < 0 || err != nil {
			return fmt.Errorf("checkpoint %q: want <file>:<line>", checkpoint)
		}
		s.skipFile, s.skipLine = checkpoint[:i], n
	}
	return nil
}

// Read returns the next row, waiting for a file to arrive.
func (s *Source) Read(ctx context.Context) (connector.Record, error) {
	poll := s.Poll
	if poll <= 0 {
		poll = 2 * time.Second
	}
	for {
		if s.file != "" && s.next < len(s.lines) {
			i := s.next
			s.next++
			lineNo := i + 2 // the header is line 1
			data := append(append(append([]byte(nil), s.header...), '\n'), s.lines[i]...)
			sum := sha256.Sum256(s.lines[i])
			return connector.Record{
				Key:     fmt.Sprintf("%s:%d", s.file, lineNo),
				Version: hex.EncodeToString(sum[:8]) + "@" + strconv.FormatInt(s.modTime.Unix(), 10),
				Cursor:  fmt.Sprintf("%s:%d", s.file, lineNo),
				Data:    data,
				Ref:     ref{file: s.file, last: s.next == len(s.lines)},
			}, nil
		}
		if s.file != "" { // a file with no rows left to send (empty, or all done before a restart)
			if err := s.finish(s.file); err != nil {
				return connector.Record{}, err
			}
			s.file = ""
		}
		name, err := s.oldest()
		if err != nil {
			return connector.Record{}, err
		}
		if name == "" {
			select {
			case <-ctx.Done():
				return connector.Record{}, ctx.Err()
			case <-time.After(poll):
			}
			continue
		}
		refused, err := s.open(name)
		if err != nil {
			return connector.Record{}, err
		}
		if refused != "" {
			return s.refuse(name, refused)
		}
	}
}

func (s *Source) oldest() (string, error) {
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		return "", fmt.Errorf("%w: %v", connector.ErrUnavailable, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(strings.ToLower(e.Name()), ".csv") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "", nil
	}
	return names[0], nil
}

// MaxFileBytes bounds one CSV file; a larger one is refused whole.
const MaxFileBytes = 64 << 20

// open reads the file name: a regular file, not followed through a
// symbolic link (O_NOFOLLOW), of at most MaxFileBytes. Anything else is
// refused, with the reason, and not read.
func (s *Source) open(name string) (refused string, err error) {
	path := filepath.Join(s.Dir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return name + " is a symbolic link: only regular files are read", nil
	}
	if err != nil {
		return "", fmt.Errorf("%w: %v", connector.ErrUnavailable, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("%w: %v", connector.ErrUnavailable, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Sprintf("%s is not a regular file (%s): only regular files are read", name, st.Mode().Type()), nil
	}
	if st.Size() > MaxFileBytes {
		return fmt.Sprintf("%s is %d bytes, over the %d a file may have", name, st.Size(), MaxFileBytes), nil
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("%w: %v", connector.ErrUnavailable, err)
	}
	if len(b) > MaxFileBytes {
		return fmt.Sprintf("%s grew over the %d bytes a file may have", name, MaxFileBytes), nil
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a byte-order mark from spreadsheet tools
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	all := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	s.file, s.modTime, s.header, s.lines, s.next = name, st.ModTime().Truncate(time.Second), all[0], all[1:], 0
	if len(b) == 0 {
		s.lines = nil
	}
	if name == s.skipFile {
		s.next = min(max(s.skipLine-1, 0), len(s.lines)) // line n is lines[n-2]; resume after it
	}
	return "", nil
}

// refuse moves what name is (the link itself, not its target) into
// rejected/ and returns the record the runner dead-letters with the reason.
func (s *Source) refuse(name, reason string) (connector.Record, error) {
	if err := os.MkdirAll(filepath.Join(s.Dir, "rejected"), 0o755); err != nil {
		return connector.Record{}, fmt.Errorf("%w: %v", connector.ErrUnavailable, err)
	}
	if err := os.Rename(filepath.Join(s.Dir, name), filepath.Join(s.Dir, "rejected", name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return connector.Record{}, fmt.Errorf("move %s to rejected/: %w", name, err)
	}
	return connector.Record{Key: name, Version: "refused", Cursor: name + ":1", Refused: reason}, nil
}

// Ack moves a file into done/ once its last row is handled.
func (s *Source) Ack(_ context.Context, r connector.Record) error {
	if rf, ok := r.Ref.(ref); ok && rf.last {
		if err := s.finish(rf.file); err != nil {
			return err
		}
		if s.file == rf.file {
			s.file = ""
		}
	}
	return nil
}

func (s *Source) finish(name string) error {
	err := os.Rename(filepath.Join(s.Dir, name), filepath.Join(s.Dir, "done", name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("move %s to done/: %w", name, err)
	}
	return nil
}

// Close does nothing: files are opened and read whole in Read.
func (s *Source) Close() error { return nil }

// ExportTime is the modification time of the file a record came from.
func ExportTime(r connector.Record) (time.Time, bool) {
	i := strings.LastIndexByte(r.Version, '@')
	if i < 0 {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(r.Version[i+1:], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, 0).UTC(), true
}

// Row parses a record into its header and row fields, by lower-cased
// header name. It checks the row has as many fields as the header.
func Row(r connector.Record) (map[string]string, error) {
	rd := csv.NewReader(bytes.NewReader(r.Data))
	rd.FieldsPerRecord = -1
	rows, err := rd.ReadAll()
	if err != nil || len(rows) != 2 {
		return nil, fmt.Errorf("%s: not a CSV row under a header: %v", r.Key, err)
	}
	head, row := rows[0], rows[1]
	if len(row) != len(head) {
		return nil, fmt.Errorf("%s: %d fields, the header has %d", r.Key, len(row), len(head))
	}
	col := map[string]string{}
	for i, h := range head {
		col[strings.TrimSpace(strings.ToLower(h))] = strings.TrimSpace(row[i])
	}
	return col, nil
}
