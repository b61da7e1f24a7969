package simulate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
