// iochub IOC dashboard: plain JavaScript and the vendored ECharts (no
// external asset). Tiles with targets and the change against the previous
// period, a chart per sector, the province map, lists to act on, the
// monitor's alerts that matter as a banner; a wall layout at 1920×1080 and
// a kiosk mode (#wall=1).
'use strict';

const I18N = {
  vi: {
    title: 'Trung tâm giám sát, điều hành thông minh', period: 'Kỳ', today: 'Hôm nay', last7: '7 ngày qua',
    last30: '30 ngày qua', last12m: '12 tháng qua', custom: 'Tùy chọn', area: 'Địa bàn', auto: 'Tự làm mới',
    token: 'Mã truy cập (reader token)', signin: 'Đăng nhập', signout: 'Đăng xuất', byArea: 'Theo địa bàn', value: 'Giá trị',
    allAreas: 'Toàn tỉnh', lang: 'English', updated: 'Cập nhật', noData: 'chưa có dữ liệu', ago: 'trước',
    sec: 'giây', min: 'phút', hour: 'giờ', day: 'ngày', badToken: 'Mã truy cập không hợp lệ.',
    loaded: 'Số liệu lúc', failed: 'Không tải được số liệu', wall: 'Màn hình lớn', map: 'Bản đồ', csv: 'Tải CSV', close: 'Đóng',
    publicservice: 'Dịch vụ công', feedback: 'Phản ánh hiện trường', health: 'Y tế', education: 'Giáo dục', traffic: 'Giao thông',
    days: 'ngày theo lịch, giờ Việt Nam', vsPrev: 'so với kỳ trước', target: 'Mục tiêu', points: 'điểm %',
    page: 'Trang', of: '/', rows: 'dòng', noRows: 'Không có mục nào', since: 'từ', incidents: 'Sự cố', reports: 'Phản ánh',
    open: 'đang xử lý', done: 'đã xong', noAlerts: 'Không đọc được cảnh báo của bộ giám sát', more: 'Xem tất cả', legendPoints: 'Điểm: sự cố và phản ánh trong kỳ (đỏ: đang xử lý, xanh: đã xong)',
  },
  en: {
    title: 'Intelligent Operations Center', period: 'Period', today: 'Today', last7: 'Last 7 days',
    last30: 'Last 30 days', last12m: 'Last 12 months', custom: 'Custom', area: 'Area', auto: 'Auto-refresh',
    token: 'Reader token', signin: 'Sign in', signout: 'Sign out', byArea: 'By area', value: 'Value',
    allAreas: 'Whole province', lang: 'Tiếng Việt', updated: 'Updated', noData: 'no data yet', ago: 'ago',
    sec: 's', min: 'min', hour: 'h', day: 'd', badToken: 'The token was not accepted.',
    loaded: 'Figures as of', failed: 'Could not load the figures', wall: 'Wall screen', map: 'Map', csv: 'Download CSV', close: 'Close',
    publicservice: 'Public services', feedback: 'Citizen reports', health: 'Health', education: 'Education', traffic: 'Traffic',
    days: 'calendar days, Vietnam time', vsPrev: 'vs previous period', target: 'Target', points: 'pp',
    page: 'Page', of: '/', rows: 'rows', noRows: 'Nothing to list', since: 'since', incidents: 'Incidents', reports: 'Reports',
    open: 'open', done: 'done', noAlerts: 'The monitor\'s alerts could not be read', more: 'See all', legendPoints: 'Points: incidents and reports of the period (red: open, green: done)',
  },
};

// Tiles per sector. window: "period" (the chosen period), "open" (entities
// opened in the year before the period's end: what is open now), "lastday"
// (the last day of the period). list: the drill-down behind the tile.
const SECTORS = [
  { id: 'publicservice', chart: 'publicservice.dossiers_received', tiles: [
    { kpi: 'publicservice.dossiers_received' }, { kpi: 'publicservice.on_time_rate' },
    { kpi: 'publicservice.online_share' }, { kpi: 'publicservice.overdue_now', window: 'open', list: 'overdue_dossiers' } ] },
  { id: 'feedback', chart: 'feedback.reports_submitted', tiles: [
    { kpi: 'feedback.reports_open', window: 'open', list: 'late_reports' }, { kpi: 'feedback.resolve_hours_median' },
    { kpi: 'feedback.resolved_within_deadline', list: 'late_reports' }, { kpi: 'feedback.satisfaction' } ] },
  { id: 'health', chart: 'health.visits', tiles: [
    { kpi: 'health.visits' }, { kpi: 'health.emergencies' }, { kpi: 'health.bed_occupancy' }, { kpi: 'health.wait_minutes' } ] },
  { id: 'education', chart: 'education.attendance_rate', tiles: [
    { kpi: 'education.attendance_rate' }, { kpi: 'education.schools_not_reported', window: 'lastday' } ] },
  { id: 'traffic', chart: 'traffic.vehicles_per_hour', tiles: [
    { kpi: 'traffic.incidents', list: 'incidents' }, { kpi: 'traffic.casualties', list: 'incidents' }, { kpi: 'traffic.vehicles_per_hour' }, { kpi: 'traffic.mean_speed' } ] },
];
// The detail panel's lists, in rotation order on the wall.
const DETAIL = ['overdue_dossiers', 'late_reports', 'incidents'];

const TZ = 'Asia/Ho_Chi_Minh';
const state = { lang: 'vi', token: '', catalog: {}, areas: [], lists: {}, shapes: null, timer: null, charts: {}, map: null,
  wall: false, detail: 'overdue_dossiers', rotate: null, drill: null };

function t(key) { return (I18N[state.lang] || I18N.vi)[key] || key; }
function locale() { return state.lang === 'vi' ? 'vi-VN' : 'en-GB'; }
function text(x) { return x ? (x[state.lang] || x.vi || '') : ''; }

// Numbers the Vietnamese way (1.234,5) or the English way (1,234.5).
function fmtNumber(v, digits) {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits, minimumFractionDigits: 0 }).format(v);
}
function fmtValue(v, format) {
  if (v === null || v === undefined) return '—';
  if (format === 'count') return fmtNumber(Math.round(v * 10) / 10, v >= 100 ? 0 : 1);
  return fmtNumber(v, Math.abs(v) >= 1000 ? 0 : 1); // 17.845 xe/giờ, not 17.845,1
}
// A value and its unit, or a dash alone.
function withUnit(v, def) { return v === null || v === undefined ? '—' : `${fmtValue(v, def.format)} ${unitOf(def)}`; }
// The unit, written out: a score as "/5 điểm".
function unitOf(def) {
  return def.scale ? `/${fmtNumber(def.scale, 0)} ${text(def.unit)}` : text(def.unit);
}
// dd/mm/yyyy (and HH:MM) in the IOC's time zone, whatever the browser's.
function parts(d) {
  const p = {};
  new Intl.DateTimeFormat('en-GB', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' })
    .formatToParts(d).forEach((x) => { p[x.type] = x.value; });
  return p;
}
function fmtDate(d) { const p = parts(d); return `${p.day}/${p.month}/${p.year}`; }
function fmtDateTime(d) { const p = parts(d); return `${p.hour}:${p.minute} ${p.day}/${p.month}/${p.year}`; }
function isoDay(d) { const p = parts(d); return `${p.year}-${p.month}-${p.day}`; }

// Local midnight of the IOC's day containing d, as a Date (Vietnam has no DST: +07:00).
function dayStart(d) { return new Date(isoDay(d) + 'T00:00:00+07:00'); }
function addDays(d, n) { return new Date(d.getTime() + n * 86400000); }

// The period: calendar days in the province's time zone, as the API's
// default (7 days: today and the six before).
function period() {
  const sel = document.getElementById('period').value;
  const now = new Date();
  let from; let to = now; let gran = 'day';
  if (sel === 'today') { from = dayStart(now); gran = 'hour'; }
  else if (sel === '7d') { from = addDays(dayStart(now), -6); }
  else if (sel === '30d') { from = addDays(dayStart(now), -29); }
  else if (sel === '12m') { from = addDays(dayStart(now), -365); gran = 'month'; }
  else {
    const f = document.getElementById('from').value; const tv = document.getElementById('to').value;
    from = new Date((f || isoDay(addDays(now, -6))) + 'T00:00:00+07:00');
    to = addDays(new Date((tv || isoDay(now)) + 'T00:00:00+07:00'), 1);
    const days = (to - from) / 86400000;
    gran = days <= 2 ? 'hour' : days > 92 ? 'month' : 'day';
  }
  return { from, to, gran };
}

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: 'Bearer ' + state.token } });
  if (res.status === 401) { showLogin(t('badToken')); throw new Error('401'); }
  const body = await res.json();
  if (!res.ok) throw new Error(body.detail || res.statusText);
  return body;
}
function iso(d) { return d.toISOString().replace('.000Z', 'Z'); }
function selectedArea() { return document.getElementById('area').value; }
function kpiURL(name, from, to, gran, extra) {
  const q = new URLSearchParams({ from: iso(from), to: iso(to), granularity: gran });
  const def = state.catalog[name];
  if (selectedArea() && def && def.dimensions.includes('area')) q.set('area', selectedArea());
  Object.entries(extra || {}).forEach(([k, v]) => q.set(k, v));
  return `/v1/kpis/${encodeURIComponent(name)}?${q}`;
}
function listURL(name, extra) {
  const q = new URLSearchParams(extra || {});
  if (selectedArea()) q.set('area', selectedArea());
  return `/v1/lists/${name}?${q}`;
}
function pickGran(name, want) {
  const g = (state.catalog[name] || {}).granularities || ['day'];
  if (g.includes(want)) return want;
  return g.includes('day') ? 'day' : g[0];
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => { if (k === 'class') e.className = v; else e.setAttribute(k, v); });
  kids.forEach((k) => e.append(k));
  return e;
}

function ago(isoTime) {
  const s = Math.max(0, (Date.now() - new Date(isoTime).getTime()) / 1000);
  if (s < 90) return `${Math.round(s)} ${t('sec')} ${t('ago')}`;
  if (s < 5400) return `${Math.round(s / 60)} ${t('min')} ${t('ago')}`;
  if (s < 172800) return `${Math.round(s / 3600)} ${t('hour')} ${t('ago')}`;
  return `${Math.round(s / 86400)} ${t('day')} ${t('ago')}`;
}

// ---- Tiles -----------------------------------------------------------

function targetText(def) {
  const tg = def.target;
  if (!tg) return '';
  return `${t('target')} ${tg.better === 'lower' ? '≤' : '≥'} ${fmtValue(tg.goal, def.format)}${def.format === 'percent' ? '%' : ''}`;
}
// The change against the previous period: ▲/▼, in points for a percent,
// else in %; green when it goes the target's better way.
function changeText(def, prev) {
  if (!prev || prev.change === null || prev.change === undefined) return { text: '', cls: '' };
  const c = prev.change;
  const arrow = c > 0 ? '▲' : c < 0 ? '▼' : '＝';
  const amount = prev.change_kind === 'points' ? `${fmtNumber(Math.abs(c), 1)} ${t('points')}` : `${fmtNumber(Math.abs(c), 1)}%`;
  let cls = '';
  if (def.target && c !== 0) cls = (c > 0) === (def.target.better === 'higher') ? 'good' : 'bad';
  return { text: `${arrow} ${amount}`, cls };
}

function build() {
  const root = document.getElementById('sectors');
  root.replaceChildren();
  Object.values(state.charts).forEach((c) => c.dispose());
  state.charts = {};
  SECTORS.forEach((sec) => {
    const tiles = sec.tiles.filter((x) => state.catalog[x.kpi]);
    if (!tiles.length) return;
    const box = el('section', { class: 'sector', 'data-sector': sec.id },
      el('h2', {}, el('span', { 'data-i18n': sec.id }, t(sec.id)), el('span', { class: 'fresh', 'data-fresh': sec.id }, '')));
    const grid = el('div', { class: 'tiles' });
    tiles.forEach((x) => {
      const attrs = { class: 'tile', 'data-kpi': x.kpi };
      if (x.list && state.lists[x.list]) { attrs['data-list'] = x.list; attrs.tabindex = '0'; attrs.role = 'button'; }
      const tile = el('div', attrs, el('div', { class: 'label' }, ''),
        el('div', { class: 'figure' }, el('span', { class: 'value' }, '…'), el('span', { class: 'unit' }, '')),
        el('div', { class: 'meta' }, el('span', { class: 'change' }, ''), el('span', { class: 'target' }, '')));
      if (attrs['data-list']) {
        tile.addEventListener('click', () => openDrill(x.list));
        tile.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') openDrill(x.list); });
      }
      grid.append(tile);
    });
    box.append(grid);
    if (state.catalog[sec.chart]) {
      box.append(el('div', { class: 'chart-title', 'data-chart-title': sec.chart }, ''), el('div', { class: 'chart-box', 'data-chart': sec.chart }));
    }
    root.append(box);
  });
  const mk = document.getElementById('map-kpi');
  const keep = mk.dataset.chosen || 'publicservice.on_time_rate';
  mk.replaceChildren();
  Object.values(state.catalog).filter((d) => d.dimensions.includes('area')).forEach((d) => mk.append(el('option', { value: d.name }, text(d.title))));
  if (state.catalog[keep]) mk.value = keep;
  buildDetailTabs();
}

function fillTile(x, def, r) {
  const tile = document.querySelector(`.tile[data-kpi="${x.kpi}"]`);
  tile.querySelector('.label').textContent = text(def.title);
  tile.querySelector('.value').textContent = fmtValue(r.total, def.format);
  tile.querySelector('.unit').textContent = r.total === null ? '' : unitOf(def);
  tile.dataset.total = r.total === null ? '' : String(r.total);
  tile.dataset.state = r.target_state || '';
  const ch = changeText(def, r.previous);
  const c = tile.querySelector('.change');
  c.textContent = ch.text; c.className = 'change ' + ch.cls;
  c.title = r.previous ? `${t('vsPrev')} (${fmtDate(new Date(r.previous.from))} – ${fmtDate(new Date(new Date(r.previous.to).getTime() - 1000))})` : '';
  c.dataset.change = r.previous && r.previous.change !== null ? String(r.previous.change) : '';
  tile.querySelector('.target').textContent = targetText(def);
  tile.querySelector('.target').title = def.target ? text(def.target.basis) : '';
}

function fillFresh(sec, r) {
  const fr = document.querySelector(`[data-fresh="${sec}"]`);
  if (r.freshness && r.freshness.last_ingest_time) {
    const age = (Date.now() - new Date(r.freshness.last_ingest_time).getTime()) / 1000;
    fr.className = 'fresh ' + (age < 900 ? 'ok' : age < 86400 ? 'warn' : 'bad');
    fr.textContent = `${t('updated')} ${ago(r.freshness.last_ingest_time)}`;
  } else { fr.className = 'fresh bad'; fr.textContent = t('noData'); }
}

// ---- Charts ----------------------------------------------------------

function axisLabel(gran) {
  return (v) => { const p = parts(new Date(v)); return gran === 'hour' ? `${p.hour}h` : gran === 'month' ? `${p.month}/${p.year}` : `${p.day}/${p.month}`; };
}
function drawChart(name, box, r, gran) {
  const def = state.catalog[name];
  box.dataset.points = String(r.series.length);
  if (!window.echarts) return;
  let c = state.charts[name];
  if (!c) { c = window.echarts.init(box, null, { renderer: 'svg' }); state.charts[name] = c; follow(box, c); }
  const series = { type: 'bar', name: text(def.title), data: r.series.map((p) => [p.t, p.value]), itemStyle: { color: '#1f5fa8' }, barMaxWidth: 28 };
  if (def.target) {
    series.markLine = { symbol: 'none', silent: true, lineStyle: { color: '#c62828', type: 'dashed' },
      label: { formatter: targetText(def), position: 'insideEndTop' }, data: [{ yAxis: def.target.goal }] };
  }
  c.setOption({
    animation: false, grid: { left: 46, right: 10, top: 18, bottom: 22 },
    tooltip: { trigger: 'axis', renderMode: 'richText', valueFormatter: (v) => `${fmtValue(v, def.format)} ${unitOf(def)}` },
    xAxis: { type: 'category', data: r.series.map((p) => p.t), axisLabel: { formatter: axisLabel(gran), hideOverlap: true } },
    yAxis: { type: 'value', axisLabel: { formatter: (v) => fmtNumber(v, 1) }, splitNumber: 3, minInterval: def.format === 'count' ? 1 : 0 },
    series: [{ ...series, data: r.series.map((p) => p.value) }],
  }, true);
}

// follow keeps a chart the size of its box as the layout settles (a table
// filled below it, the banner shown, the window resized).
function follow(box, chart) {
  if (window.ResizeObserver) new ResizeObserver(() => chart.resize()).observe(box);
}

// ---- The map ---------------------------------------------------------

function areaName(code) { const a = state.areas.find((x) => x.code === code); return a ? a.name_vi : code; }
// A colour scale from light to dark blue over [min, max].
function colour(v, min, max) {
  if (v === null || v === undefined) return '#eeeeee'; // no data: grey, lighter than any value
  const f = max > min ? (v - min) / (max - min) : 1;
  const a = [198, 219, 239]; const b = [13, 59, 102];
  return '#' + a.map((x, i) => Math.round(x + (b[i] - x) * f).toString(16).padStart(2, '0')).join('');
}
async function refreshMap(from, to) {
  const name = document.getElementById('map-kpi').value; if (!name) return;
  const def = state.catalog[name];
  const q = new URLSearchParams({ from: iso(from), to: iso(to), granularity: pickGran(name, 'day'), by: 'area' });
  const r = await api(`/v1/kpis/${encodeURIComponent(name)}?${q}`);
  const units = state.areas.filter((a) => a.level !== 'province');
  const byCode = Object.fromEntries((r.breakdown || []).map((p) => [p.key, p.value]));
  const vals = units.map((a) => byCode[a.code]).filter((v) => v !== null && v !== undefined);
  const min = vals.length ? Math.min(...vals) : 0; const max = vals.length ? Math.max(...vals) : 1;
  const fills = Object.fromEntries(units.map((a) => [a.code, colour(byCode[a.code], min, max)]));
  const box = document.getElementById('map');
  box.dataset.kpi = name;
  box.dataset.fills = JSON.stringify(fills);
  const bar = el('span', { class: 'scale' });
  bar.style.background = `linear-gradient(to right, ${colour(min, min, max)}, ${colour(max, min, max)})`;
  const none = el('span', { class: 'scale none' });
  none.style.background = colour(null, 0, 1);
  document.getElementById('map-legend').replaceChildren(
    el('span', { class: 'legend-row' }, `${text(def.title)}: ${withUnit(min, def)} `, bar, ` ${withUnit(max, def)} · `, none, ` ${t('noData')}`),
    ...(state.shapes ? [el('br', {}), `${t('legendPoints')}.` + (state.shapes.note ? ` ${text(state.shapes.note)}.` : '')] : []));
  const sel = selectedArea();
  document.querySelector('#bd-table tbody').replaceChildren(...units.map((a) =>
    el('tr', { 'data-area': a.code, class: a.code === sel ? 'selected' : '' }, el('td', {}, a.name_vi), el('td', { class: 'num' }, withUnit(byCode[a.code], def)))));
  if (!state.shapes || !window.echarts) { drawCartogram(box, units, byCode, fills, def, min, max); return; }
  const points = await mapPoints(from, to);
  if (!state.map) {
    window.echarts.registerMap('province', state.shapes);
    state.map = window.echarts.init(box, null, { renderer: 'svg' });
    follow(box, state.map);
    state.map.on('click', (p) => { if (p.componentType === 'geo') chooseArea(p.name); });
  }
  state.map.setOption({
    animation: false,
    tooltip: { trigger: 'item', renderMode: 'richText',
      formatter: (p) => (p.componentType === 'geo' ? `${areaName(p.name)}: ${withUnit(byCode[p.name], def)}` : p.data.label) },
    geo: { map: 'province', nameProperty: 'code', roam: false, selectedMode: false, layoutSize: '95%', triggerEvent: true,
      tooltip: { show: true },
      itemStyle: { borderColor: '#fff', borderWidth: 1.5 }, emphasis: { itemStyle: { areaColor: '#f5b041' }, label: { show: true } },
      label: { show: true, fontSize: state.wall ? 14 : 11, color: '#1b2430', textBorderColor: '#fff', textBorderWidth: 2,
        formatter: (p) => areaName(p.name).replace(/^(Thành phố|Thị xã|Huyện) /, '') },
      regions: units.map((a) => ({ name: a.code, itemStyle: { areaColor: fills[a.code], borderColor: a.code === sel ? '#b3261e' : '#fff',
        borderWidth: a.code === sel ? 3 : 1.5 } })) },
    series: [{ type: 'scatter', coordinateSystem: 'geo', symbolSize: 7, data: points, itemStyle: { borderColor: '#fff', borderWidth: 1 } }],
  }, true);
  box.dataset.points = String(points.length);
}
async function mapPoints(from, to) {
  const q = { from: iso(from), to: iso(to), size: '1000' };
  const out = [];
  const add = (name, r, label) => (r.rows || []).forEach((row) => {
    if (row.lat === null || row.lon === null) return;
    const done = ['cleared', 'resolved', 'rejected'].includes(row.status);
    out.push({ value: [row.lon, row.lat], label: `${label(row)} — ${row.status}`, itemStyle: { color: done ? '#2e7d32' : '#c62828' } });
  });
  const jobs = [];
  if (state.lists.incidents) jobs.push(api(listURL('incidents', q)).then((r) => add('incidents', r, (x) => `${t('incidents')} ${x.incident_id} ${x.kind}`)));
  if (state.lists.reports) jobs.push(api(listURL('reports', q)).then((r) => add('reports', r, (x) => `${t('reports')} ${x.report_id} ${x.category}`)));
  await Promise.allSettled(jobs);
  return out;
}
// Where no shapes are given: a tile per unit, coloured the same way.
function drawCartogram(box, units, byCode, fills, def, min, max) {
  const sel = selectedArea();
  box.classList.add('cartogram');
  box.replaceChildren(...units.map((a) => {
    const v = byCode[a.code];
    const light = v === null || v === undefined || (max > min && (v - min) / (max - min) < 0.45);
    const d = el('div', { 'data-area': a.code, class: (a.code === sel ? 'selected ' : '') + (light ? 'light' : '') },
      el('strong', {}, a.name_vi), el('br', {}), withUnit(byCode[a.code], def));
    d.style.background = fills[a.code];
    d.addEventListener('click', () => chooseArea(a.code));
    return d;
  }));
}
function chooseArea(code) {
  const sel = document.getElementById('area');
  sel.value = sel.value === code ? '' : code;
  refresh().catch(() => {});
}

// ---- Lists: the detail panel and the drill-down ----------------------

function cell(col, v) {
  if (v === null || v === undefined || v === '') return '—';
  if (col.type === 'time') return fmtDateTime(new Date(v));
  if (col.type === 'int') return fmtNumber(v, 0);
  if (col.type === 'float') return fmtNumber(v, 5);
  if (col.name === 'area_code') return areaName(v);
  return String(v);
}
function listTable(l, rows, cols) {
  const shown = l.columns.filter((c) => !cols || cols.includes(c.name));
  return [el('thead', {}, el('tr', {}, ...shown.map((c) => el('th', { 'data-col': c.name }, text(c.title))))),
    el('tbody', {}, ...(rows.length ? rows.map((row) => el('tr', {}, ...shown.map((c) => el('td', { class: c.type === 'int' || c.type === 'float' ? 'num' : '' }, cell(c, row[c.name])))))
      : [el('tr', {}, el('td', { colspan: String(shown.length), class: 'sub' }, t('noRows')))]))];
}
function buildDetailTabs() {
  const tabs = document.getElementById('detail-tabs');
  tabs.replaceChildren(...DETAIL.filter((n) => state.lists[n]).map((n) => {
    const b = el('button', { type: 'button', 'data-detail': n, class: n === state.detail ? 'on' : '' }, text(state.lists[n].title));
    b.addEventListener('click', () => { state.detail = n; refreshDetail().catch(() => {}); });
    return b;
  }));
  if (!state.lists[state.detail]) state.detail = DETAIL.find((n) => state.lists[n]) || '';
  document.getElementById('detail').hidden = !state.detail;
}
const DETAIL_COLS = { overdue_dossiers: ['dossier_id', 'agency_code', 'area_code', 'days_overdue'], late_reports: ['category', 'agency_code', 'area_code', 'age_hours'],
  incidents: ['kind', 'severity', 'area_code', 'status', 'occurred_at'] };
async function refreshDetail() {
  const l = state.lists[state.detail]; if (!l) return;
  document.querySelectorAll('#detail-tabs button').forEach((b) => b.classList.toggle('on', b.dataset.detail === state.detail));
  const r = await api(listURL(l.name, { size: '8' }));
  document.getElementById('detail-title').textContent = `${text(l.title)} (${fmtNumber(r.total, 0)})`;
  const more = el('button', { type: 'button', class: 'more' }, t('more'));
  more.addEventListener('click', () => openDrill(l.name));
  const tbl = el('table', { class: 'ops', 'data-list': l.name }, ...listTable(l, r.rows, DETAIL_COLS[l.name]));
  document.getElementById('detail-body').replaceChildren(tbl, state.wall ? '' : more);
}

async function openDrill(name, page, sort, order) {
  const l = state.lists[name]; if (!l) return;
  state.drill = { name, page: page || 1, sort: sort || l.sort, order: order || (l.desc ? 'desc' : 'asc') };
  await drawDrill();
  document.getElementById('drill').hidden = false;
}
async function drawDrill() {
  const d = state.drill; const l = state.lists[d.name];
  const r = await api(listURL(d.name, { page: String(d.page), size: '25', sort: d.sort, order: d.order }));
  document.getElementById('drill-title').textContent = `${text(l.title)} — ${selectedArea() ? areaName(selectedArea()) : t('allAreas')}`;
  document.getElementById('drill-sub').textContent = `${fmtNumber(r.total, 0)} ${t('rows')} · ${fmtDate(new Date(r.from))} – ${fmtDateTime(new Date(r.to))}`;
  const tbl = document.getElementById('drill-table');
  tbl.dataset.list = d.name;
  tbl.replaceChildren(...listTable(l, r.rows));
  tbl.querySelectorAll('th').forEach((th) => {
    if (th.dataset.col === d.sort) th.setAttribute('aria-sort', d.order === 'asc' ? 'ascending' : 'descending');
    th.addEventListener('click', () => {
      const order = th.dataset.col === d.sort && d.order === 'desc' ? 'asc' : 'desc';
      openDrill(d.name, 1, th.dataset.col, order).catch(() => {});
    });
  });
  const pages = Math.max(1, Math.ceil(r.total / 25));
  document.getElementById('drill-page').textContent = `${t('page')} ${d.page}${t('of')}${pages}`;
  document.getElementById('drill-prev').disabled = d.page <= 1;
  document.getElementById('drill-next').disabled = d.page >= pages;
  document.body.dataset.drilled = String(Date.now());
}
async function downloadCSV() {
  const d = state.drill;
  const res = await fetch(listURL(d.name, { format: 'csv', sort: d.sort, order: d.order }), { headers: { Authorization: 'Bearer ' + state.token } });
  const blob = await res.blob();
  const a = el('a', { href: URL.createObjectURL(blob), download: `${d.name}.csv` });
  document.body.append(a); a.click(); a.remove();
}

// ---- The banner ------------------------------------------------------

// The banner: the monitor's alerts that matter. When they cannot be read,
// the banner says so (the figures may still be fine).
async function refreshBanner() {
  const b = document.getElementById('banner');
  let r;
  try { r = await api('/v1/alerts'); } catch (e) {
    if (e.message === '401') throw e;
    b.hidden = false;
    b.replaceChildren(el('p', { 'data-alert': 'unknown' }, `⚠ ${t('noAlerts')}: ${e.message}`));
    return;
  }
  b.hidden = !r.alerts.length;
  b.replaceChildren(...r.alerts.map((a) => el('p', { 'data-alert': a.name, 'data-subject': a.subject || '' }, `⚠ ${text(a.text)} (${t('since')} ${fmtDateTime(new Date(a.since))})`)));
}

// ---- Refresh ---------------------------------------------------------

async function refresh() {
  const { from, to, gran } = period();
  const status = document.getElementById('status');
  const jobs = [];
  SECTORS.forEach((sec) => sec.tiles.forEach((x) => {
    const def = state.catalog[x.kpi]; if (!def) return;
    let f = from;
    if (x.window === 'open') f = addDays(to, -90);
    if (x.window === 'lastday') f = dayStart(new Date(to.getTime() - 1000));
    const g = pickGran(x.kpi, x.window === 'open' ? 'month' : 'day');
    jobs.push(api(kpiURL(x.kpi, f, to, g, { compare: 'previous' })).then((r) => { fillTile(x, def, r); fillFresh(sec.id, r); }));
  }));
  SECTORS.forEach((sec) => {
    const def = state.catalog[sec.chart]; if (!def) return;
    const g = pickGran(sec.chart, gran);
    let f = from;
    if (g !== gran && gran === 'hour') f = addDays(dayStart(to), -6); // a day-only KPI: show the week
    jobs.push(api(kpiURL(sec.chart, f, to, g)).then((r) => {
      document.querySelector(`[data-chart-title="${sec.chart}"]`).textContent =
        `${text(def.title)} (${unitOf(def)}) — ${fmtDate(f)} – ${fmtDate(new Date(to.getTime() - 1000))}`;
      drawChart(sec.chart, document.querySelector(`[data-chart="${sec.chart}"]`), r, g);
    }));
  });
  jobs.push(refreshMap(from, to));
  jobs.push(refreshDetail());
  jobs.push(refreshBanner());
  const results = await Promise.allSettled(jobs);
  const failed = results.filter((r) => r.status === 'rejected');
  status.textContent = failed.length ? `${t('failed')}: ${failed[0].reason.message}`
    : `${t('loaded')} ${fmtDateTime(new Date())} · ${fmtDate(from)} – ${fmtDate(new Date(to.getTime() - 1000))} (${t('days')})`;
  document.body.dataset.loaded = String(Date.now());
}

function applyLang() {
  document.documentElement.lang = state.lang;
  document.querySelectorAll('[data-i18n]').forEach((e) => { e.textContent = t(e.dataset.i18n); });
  document.getElementById('lang').textContent = t('lang');
  const area = document.getElementById('area');
  if (area.options.length) area.options[0].textContent = t('allAreas');
}

function showLogin(msg) {
  document.getElementById('main').hidden = true;
  document.getElementById('login').hidden = false;
  document.getElementById('login-error').textContent = msg || '';
}

async function start() {
  document.getElementById('login').hidden = true;
  const who = await api('/v1/whoami');
  const [cat, ar, ls] = await Promise.all([api('/v1/kpis'), api('/v1/areas'), api('/v1/lists')]);
  state.catalog = Object.fromEntries(cat.kpis.map((d) => [d.name, d]));
  state.lists = Object.fromEntries(ls.lists.map((l) => [l.name, l]));
  state.areas = ar.areas;
  const res = await fetch('/v1/areas/shapes', { headers: { Authorization: 'Bearer ' + state.token } });
  state.shapes = res.ok ? await res.json() : null;
  const sel = document.getElementById('area');
  sel.replaceChildren(el('option', { value: '' }, t('allAreas')));
  ar.areas.filter((a) => a.level !== 'province').forEach((a) => sel.append(el('option', { value: a.code }, a.name_vi)));
  const prov = ar.areas.find((a) => a.level === 'province');
  document.getElementById('province').textContent = `${prov ? prov.name_vi : ''} · ${who.name} (${who.role})`;
  document.getElementById('main').hidden = false;
  build(); applyLang();
  await refresh();
  schedule();
}

function schedule() {
  clearInterval(state.timer); clearInterval(state.rotate);
  if (state.wall || document.getElementById('auto').checked) state.timer = setInterval(() => refresh().catch(() => {}), 30000);
  if (state.wall) { // the detail panel goes round the lists
    state.rotate = setInterval(() => {
      const names = DETAIL.filter((n) => state.lists[n]);
      state.detail = names[(names.indexOf(state.detail) + 1) % names.length];
      refreshDetail().catch(() => {});
    }, 20000);
  }
}
function tick() {
  const p = parts(new Date());
  document.getElementById('clock').textContent = `${p.hour}:${p.minute} · ${p.day}/${p.month}/${p.year}`;
}

function init() {
  const h = new URLSearchParams(location.hash.slice(1));
  const q = new URLSearchParams(location.search);
  if (h.get('token')) { sessionStorage.setItem('iochub.token', h.get('token')); }
  if (h.get('lang')) state.lang = h.get('lang') === 'en' ? 'en' : 'vi';
  state.wall = h.get('wall') === '1' || q.get('wall') === '1';
  document.body.classList.toggle('wall', state.wall);
  if (h.get('from') || h.get('to')) {
    document.getElementById('period').value = 'custom';
    document.getElementById('custom-range').hidden = false;
    document.getElementById('from').value = h.get('from') || '';
    document.getElementById('to').value = h.get('to') || '';
  }
  if (h.get('period')) document.getElementById('period').value = h.get('period');
  if (h.has('token')) history.replaceState(null, '', location.pathname + location.search + (state.wall ? '#wall=1' : ''));
  localStorage.removeItem('iochub.token'); // kept there by earlier versions
  state.token = sessionStorage.getItem('iochub.token') || '';
  document.getElementById('lang').addEventListener('click', () => {
    state.lang = state.lang === 'vi' ? 'en' : 'vi'; build(); applyLang(); refresh().catch(() => {});
  });
  document.getElementById('map-kpi').addEventListener('change', (ev) => { ev.target.dataset.chosen = ev.target.value; });
  ['period', 'area', 'from', 'to', 'map-kpi'].forEach((id) => document.getElementById(id).addEventListener('change', () => {
    document.getElementById('custom-range').hidden = document.getElementById('period').value !== 'custom';
    refresh().catch(() => {});
  }));
  document.getElementById('auto').addEventListener('change', schedule);
  document.getElementById('wall-link').addEventListener('click', (ev) => { ev.preventDefault(); location.hash = 'wall=1'; location.reload(); });
  document.getElementById('signout').addEventListener('click', () => {
    sessionStorage.removeItem('iochub.token');
    state.token = '';
    clearInterval(state.timer); clearInterval(state.rotate);
    document.getElementById('main').hidden = true;
    showLogin('');
  });
  document.getElementById('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.token = document.getElementById('token').value.trim();
    sessionStorage.setItem('iochub.token', state.token);
    start().catch(() => {});
  });
  document.getElementById('drill-close').addEventListener('click', () => { document.getElementById('drill').hidden = true; });
  document.getElementById('drill').addEventListener('click', (ev) => { if (ev.target.id === 'drill') ev.target.hidden = true; });
  document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') document.getElementById('drill').hidden = true; });
  document.getElementById('drill-prev').addEventListener('click', () => { state.drill.page--; drawDrill().catch(() => {}); });
  document.getElementById('drill-next').addEventListener('click', () => { state.drill.page++; drawDrill().catch(() => {}); });
  document.getElementById('drill-csv').addEventListener('click', () => downloadCSV().catch(() => {}));
  window.addEventListener('resize', () => { Object.values(state.charts).forEach((c) => c.resize()); if (state.map) state.map.resize(); });
  tick(); setInterval(tick, 10000);
  applyLang();
  if (!state.token) { showLogin(''); return; }
  start().catch(() => {});
}

// What the Content-Security-Policy refused, for the browser tests: the
// pages must run under it whole.
document.addEventListener('securitypolicyviolation', (ev) => {
  document.body.dataset.csp = `${document.body.dataset.csp || ''}${ev.violatedDirective} ${ev.blockedURI};`;
});

init();
