// Package education reads schools' daily attendance exports: CSV files
// (UTF-8, Vietnamese headers, one file per school per day) dropped into a
// directory. Each row becomes an education.attendance event; a file is
// processed once and then moved into done/; a malformed row is
// dead-lettered with its file and line number while the rest flows.
//
// The layout, as the school management system exports it:
//
//	ma_truong,ten_truong,ma_dia_ban,cap_hoc,ngay,si_so,co_mat,vang_co_phep,vang_khong_phep
//	THCS-NX,Trường THCS Ninh Xá,27256,THCS,23/11/2026,420,401,12,7
//
// cap_hoc is "Mầm non", "Tiểu học", "THCS" or "THPT"; ngay is dd/mm/yyyy.
package education

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/services/connectors/csvdir"
)

// EventSource is the source of every attendance event this connector
// makes; it is reserved for it (the gateway refuses it to producers).
const EventSource = "/education/exports"

// Columns is the header of an export, in order.
var Columns = []string{"ma_truong", "ten_truong", "ma_dia_ban", "cap_hoc", "ngay", "si_so", "co_mat", "vang_co_phep", "vang_khong_phep"}

// Levels maps cap_hoc to the schema's level.
var Levels = map[string]string{
	"mầm non": "preschool", "tiểu học": "primary", "thcs": "lower_secondary", "thpt": "upper_secondary",
	"preschool": "preschool", "primary": "primary", "lower_secondary": "lower_secondary", "upper_secondary": "upper_secondary",
}

// Source reads the exports (see csvdir).
type Source = csvdir.Source

// Map turns one row (with its file's header) into an attendance event.
func Map(r connector.Record) (event.Event, error) {
	col, err := csvdir.Row(r)
	if err != nil {
		return event.Event{}, err
	}
	for _, c := range Columns {
		if _, ok := col[c]; !ok {
			return event.Event{}, fmt.Errorf("%s: column %s is missing (want %s)", r.Key, c, strings.Join(Columns, ","))
		}
	}
	level, ok := Levels[strings.ToLower(col["cap_hoc"])]
	if !ok {
		return event.Event{}, fmt.Errorf("%s: cap_hoc %q is not Mầm non, Tiểu học, THCS or THPT", r.Key, col["cap_hoc"])
	}
	day, err := time.Parse("02/01/2006", col["ngay"])
	if err != nil {
		return event.Event{}, fmt.Errorf("%s: ngay %q is not a date dd/mm/yyyy", r.Key, col["ngay"])
	}
	nums := map[string]int{}
	for _, c := range []string{"si_so", "co_mat", "vang_co_phep", "vang_khong_phep"} {
		n, err := strconv.Atoi(col[c])
		if err != nil || n < 0 {
			return event.Event{}, fmt.Errorf("%s: %s %q is not a count", r.Key, c, col[c])
		}
		nums[c] = n
	}
	if nums["co_mat"] > nums["si_so"] {
		return event.Event{}, fmt.Errorf("%s: co_mat %d is more than si_so %d", r.Key, nums["co_mat"], nums["si_so"])
	}
	at, ok := csvdir.ExportTime(r) // a later export of the same day replaces an earlier one
	if !ok {
		at = time.Now().UTC()
	}
	data, err := json.Marshal(map[string]any{"school_code": col["ma_truong"], "school_name": col["ten_truong"], "area_code": col["ma_dia_ban"],
		"level": level, "date": day.Format(time.DateOnly), "enrolled": nums["si_so"], "present": nums["co_mat"],
		"absent_excused": nums["vang_co_phep"], "absent_unexcused": nums["vang_khong_phep"]})
	if err != nil {
		return event.Event{}, err
	}
	return event.Event{Source: EventSource, Type: "vn.ioc.education.attendance.v1", Subject: col["ma_truong"], Time: at, Data: data}, nil
}
