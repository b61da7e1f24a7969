package health

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/services/connectors/csvdir"
)

// BedColumns is the header of the hospitals' bed-occupancy export (CSV,
// read with csvdir: one file per facility and reading):
//
//	ma_co_so,ma_dia_ban,khoa,thoi_diem,tong_giuong,giuong_dang_dung
//	BV-DK-BN,27256,Nội,2026-11-23T08:00:00+07:00,120,97
var BedColumns = []string{"ma_co_so", "ma_dia_ban", "khoa", "thoi_diem", "tong_giuong", "giuong_dang_dung"}

// MapBeds turns one row of the export into a health.bed_occupancy event.
func MapBeds(r connector.Record) (event.Event, error) {
	col, err := csvdir.Row(r)
	if err != nil {
		return event.Event{}, err
	}
	var errs []error
	for _, c := range BedColumns {
		if _, ok := col[c]; !ok {
			errs = append(errs, fmt.Errorf("column %s is missing", c))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return event.Event{}, fmt.Errorf("%s: %w", r.Key, err)
	}
	at, err := time.Parse(time.RFC3339, col["thoi_diem"])
	if err != nil {
		errs = append(errs, fmt.Errorf("thoi_diem %q is not an RFC 3339 time", col["thoi_diem"]))
	}
	total, err1 := strconv.Atoi(col["tong_giuong"])
	used, err2 := strconv.Atoi(col["giuong_dang_dung"])
	if err1 != nil || err2 != nil || total < 0 || used < 0 {
		errs = append(errs, fmt.Errorf("tong_giuong %q and giuong_dang_dung %q must be counts", col["tong_giuong"], col["giuong_dang_dung"]))
	}
	if col["ma_co_so"] == "" || col["ma_dia_ban"] == "" {
		errs = append(errs, errors.New("ma_co_so and ma_dia_ban are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return event.Event{}, fmt.Errorf("%s: %w", r.Key, err)
	}
	data := map[string]any{"facility_code": col["ma_co_so"], "area_code": col["ma_dia_ban"], "observed_at": at.UTC().Format(time.RFC3339),
		"beds_total": total, "beds_occupied": used}
	if col["khoa"] != "" {
		data["ward"] = col["khoa"]
	}
	b, _ := json.Marshal(data)
	return event.Event{Source: BedSources + col["ma_co_so"], Type: "vn.ioc.health.bed_occupancy.v1", Subject: col["ma_co_so"], Time: at.UTC(), Data: b}, nil
}
