package configfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/configfile"
)

type file struct {
	Dir   string `yaml:"dir"`
	Limit int    `yaml:"limit"`
	Inner struct {
		Wait time.Duration `yaml:"wait"`
		Keep string        `yaml:"keep"`
	} `yaml:"inner"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, yaml string
		strict     bool
		want       file
		wantErr    string
	}{
		{name: "placeholder and defaults kept", yaml: "dir: ${DATA_DIR}/x\ninner: {wait: 2s}\n", strict: true,
			want: file{Dir: "/data/x", Limit: 7, Inner: struct {
				Wait time.Duration `yaml:"wait"`
				Keep string        `yaml:"keep"`
			}{2 * time.Second, "default"}}},
		{name: "unknown key named when strict", yaml: "dri: x\n", strict: true, wantErr: "field dri not found"},
		{name: "unknown key ignored when not strict", yaml: "other: {a: 1}\nlimit: 3\n", strict: false,
			want: file{Limit: 3, Inner: struct {
				Wait time.Duration `yaml:"wait"`
				Keep string        `yaml:"keep"`
			}{0, "default"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "iochub.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			got := file{Limit: 7}
			if !tt.strict {
				got.Limit = 0
			}
			got.Inner.Keep = "default"
			err := configfile.Decode(path, "/data", &got, tt.strict)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("err = %v, want one naming %s and %q", err, path, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
