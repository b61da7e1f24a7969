package education_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/connector/connectortest"
	"github.com/iochub/iochub/services/connectors/education"
	"github.com/iochub/iochub/sim"
)

func rec(header, row string) connector.Record {
	return connector.Record{Key: "f.csv:2", Version: "x@1795392000", Data: []byte(header + "\n" + row)}
}

const header = "ma_truong,ten_truong,ma_dia_ban,cap_hoc,ngay,si_so,co_mat,vang_co_phep,vang_khong_phep"

func TestMapRows(t *testing.T) {
	for _, c := range []struct {
		name, header, row, err string
		want                   map[string]any
	}{
		{"primary", header, `TH-DB,"Trường Tiểu học Đình Bảng",27261,Tiểu học,23/11/2026,512,498,9,5`, "",
			map[string]any{"school_code": "TH-DB", "school_name": "Trường Tiểu học Đình Bảng", "area_code": "27261", "level": "primary",
				"date": "2026-11-23", "enrolled": 512.0, "present": 498.0, "absent_excused": 9.0, "absent_unexcused": 5.0}},
		{"level code", header, "MN-LT,Trường Mầm non Lương Tài,27264,Mầm non,01/12/2026,100,90,5,5", "", map[string]any{"level": "preschool", "date": "2026-12-01"}},
		{"columns in another order", "ngay,ma_truong,ten_truong,ma_dia_ban,cap_hoc,si_so,co_mat,vang_co_phep,vang_khong_phep",
			"23/11/2026,THPT-HV,Trường THPT Hàn Thuyên,27256,THPT,900,870,20,10", "", map[string]any{"level": "upper_secondary", "present": 870.0}},
		{"not a number", header, "TH-DB,X,27261,THCS,23/11/2026,120,abc,1,0", `co_mat "abc" is not a count`, nil},
		{"bad date", header, "TH-DB,X,27261,THCS,2026-11-23,120,100,1,0", `ngay "2026-11-23" is not a date dd/mm/yyyy`, nil},
		{"bad level", header, "TH-DB,X,27261,Đại học,23/11/2026,120,100,1,0", `cap_hoc "Đại học"`, nil},
		{"more present than enrolled", header, "TH-DB,X,27261,THCS,23/11/2026,120,130,0,0", "co_mat 130 is more than si_so 120", nil},
		{"short row", header, "TH-DB,X,27261", "3 fields, the header has 9", nil},
		{"missing column", "ma_truong,ten_truong", "TH-DB,X", "column ma_dia_ban is missing", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := education.Map(rec(c.header, c.row))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "f.csv:2") {
					t.Fatalf("error %v, want one naming f.csv:2 and %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			_ = json.Unmarshal(e.Data, &got)
			for k, v := range c.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
			if e.Type != "vn.ioc.education.attendance.v1" || !e.Time.Equal(time.Unix(1795392000, 0)) {
				t.Errorf("type %s, time %s", e.Type, e.Time)
			}
		})
	}
}

// TestReadsTheExportFormat reads the fixture as exported (byte-order mark,
// CRLF, quoted Vietnamese names): one good row, one malformed naming line 3.
func TestReadsTheExportFormat(t *testing.T) {
	dir := t.TempDir()
	b, _ := os.ReadFile("testdata/20261123_TH-DB.csv")
	_ = os.WriteFile(filepath.Join(dir, "20261123_TH-DB.csv"), b, 0o644)
	s := &education.Source{Dir: dir, Poll: 10 * time.Millisecond}
	ctx := context.Background()
	if err := s.Connect(ctx, ""); err != nil {
		t.Fatal(err)
	}
	r1, _ := s.Read(ctx)
	r2, _ := s.Read(ctx)
	if _, err := education.Map(r1); err != nil {
		t.Errorf("line 2: %v", err)
	}
	if _, err := education.Map(r2); err == nil || !strings.Contains(err.Error(), "20261123_TH-DB.csv:3") {
		t.Errorf("line 3: %v", err)
	}
	_ = s.Ack(ctx, r1)
	_ = s.Ack(ctx, r2)
	if _, err := os.Stat(filepath.Join(dir, "done", "20261123_TH-DB.csv")); err != nil {
		t.Errorf("the file was not moved to done/: %v", err)
	}
}

// dirSystem is a school management system dropping exports.
type dirSystem struct {
	exp *sim.ExportDir
	n   int
}

func (d *dirSystem) Source(*testing.T) connector.Source {
	return &education.Source{Dir: d.exp.Dir, Poll: 20 * time.Millisecond}
}
func (d *dirSystem) Map() connector.Mapper { return education.Map }
func (d *dirSystem) Add(t *testing.T, n int) {
	for range n {
		d.n++
		if _, err := d.exp.Write(fmt.Sprintf("S%d", d.n), education.Columns,
			fmt.Sprintf("S%d,Trường số %d,27256,THCS,%02d/11/2026,400,%d,5,5", d.n, d.n, 1+d.n%28, 380+d.n%10)); err != nil {
			t.Fatal(err)
		}
	}
}
func (d *dirSystem) AddMalformed(t *testing.T) {
	if _, err := d.exp.Write("S0", education.Columns, "S0,Trường hỏng,27256,THCS,hôm nay,400,380,5,5"); err != nil {
		t.Fatal(err)
	}
}
func (d *dirSystem) SetAvailable(t *testing.T, up bool) {
	if err := d.exp.SetDown(!up); err != nil {
		t.Fatal(err)
	}
}

func TestConformance(t *testing.T) {
	connectortest.Run(t, "education-csv", func(t *testing.T) connectortest.System {
		exp := &sim.ExportDir{Dir: filepath.Join(t.TempDir(), "exports")}
		if err := os.Mkdir(exp.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return &dirSystem{exp: exp}
	})
}
