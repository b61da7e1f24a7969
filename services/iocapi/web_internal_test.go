package iocapi

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"regexp"
	"testing"
)

// TestVendoredEChartsIsTheRecordedOne: the ECharts embedded in the binary
// is the file vendor/README.md records (make vendor fetched and checked
// it), so a hand edit or a half-copied file is caught.
func TestVendoredEChartsIsTheRecordedOne(t *testing.T) {
	b, err := fs.ReadFile(webFS, "web/vendor/echarts.min.js")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := fs.ReadFile(webFS, "web/vendor/README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("SHA-256 `([0-9a-f]{64})`").FindSubmatch(readme)
	if m == nil {
		t.Fatal("vendor/README.md records no SHA-256")
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != string(m[1]) {
		t.Errorf("vendor/echarts.min.js has SHA-256 %s, README records %s: run make vendor", got, m[1])
	}
}
