package sim

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ExportDir is a system that drops CSV exports into a directory (a school
// management system, a hospital's bed report): each export a new file,
// written under a temporary name and renamed, so a reader never sees half a
// file. Down, the directory is moved away (as when a share is unmounted).
type ExportDir struct {
	Dir string

	mu sync.Mutex
	n  int
}

func (e *ExportDir) away() string { return e.Dir + ".offline" }

// Write drops one export with the header and rows; the name sorts after
// every earlier export's. It returns the file's name.
func (e *ExportDir) Write(suffix string, header []string, rows ...string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	dir := e.Dir
	if _, err := os.Stat(dir); err != nil {
		dir = e.away()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := fmt.Sprintf("%08d_%s.csv", e.n, suffix)
	tmp := filepath.Join(dir, "."+name+".tmp")
	body := strings.Join(header, ",") + "\n" + strings.Join(rows, "\n") + "\n"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		return "", err
	}
	return name, os.Rename(tmp, filepath.Join(dir, name))
}

// WriteAt drops one export named name+".csv" whose modification time is
// at: the same export written again (a restarted simulation feeding the same
// history) is the same file, so the connector derives the same event ids
// from it. Names must sort in the order of the exports.
func (e *ExportDir) WriteAt(name string, at time.Time, header []string, rows ...string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	dir := e.Dir
	if _, err := os.Stat(dir); err != nil {
		dir = e.away()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	file := name + ".csv"
	tmp := filepath.Join(dir, "."+file+".tmp")
	body := strings.Join(header, ",") + "\n" + strings.Join(rows, "\n") + "\n"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		return err
	}
	if err := os.Chtimes(tmp, at, at); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, file))
}

// SetDown moves the directory away, or back.
func (e *ExportDir) SetDown(down bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	from, to := e.away(), e.Dir
	if down {
		from, to = e.Dir, e.away()
	}
	return os.Rename(from, to)
}
