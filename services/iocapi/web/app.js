// iochub IOC dashboard: plain JavaScript, no external assets.
'use strict';

const I18N = {
  vi: {
    title: 'Trung tâm giám sát, điều hành thông minh', period: 'Kỳ', today: 'Hôm nay', last7: '7 ngày qua',
    last30: '30 ngày qua', last12m: '12 tháng qua', custom: 'Tùy chọn', area: 'Địa bàn', auto: 'Tự làm mới',
    token: 'Mã truy cập (reader token)', signin: 'Đăng nhập', signout: 'Đăng xuất', byArea: 'Theo địa bàn', value: 'Giá trị',
    allAreas: 'Toàn tỉnh', lang: 'English', updated: 'Cập nhật', noData: 'chưa có dữ liệu', ago: 'trước',
    sec: 'giây', min: 'phút', hour: 'giờ', day: 'ngày', badToken: 'Mã truy cập không hợp lệ.',
    loaded: 'Số liệu lúc', failed: 'Không tải được số liệu',
    publicservice: 'Dịch vụ công', feedback: 'Phản ánh hiện trường', health: 'Y tế', education: 'Giáo dục', traffic: 'Giao thông',
    nowSuffix: '(hiện tại)', todaySuffix: '(trong ngày)',
  },
  en: {
    title: 'Intelligent Operations Center', period: 'Period', today: 'Today', last7: 'Last 7 days',
    last30: 'Last 30 days', last12m: 'Last 12 months', custom: 'Custom', area: 'Area', auto: 'Auto-refresh',
    token: 'Reader token', signin: 'Sign in', signout: 'Sign out', byArea: 'By area', value: 'Value',
    allAreas: 'Whole province', lang: 'Tiếng Việt', updated: 'Updated', noData: 'no data yet', ago: 'ago',
    sec: 's', min: 'min', hour: 'h', day: 'd', badToken: 'The token was not accepted.',
    loaded: 'Figures as of', failed: 'Could not load the figures',
    publicservice: 'Public services', feedback: 'Citizen reports', health: 'Health', education: 'Education', traffic: 'Traffic',
    nowSuffix: '(now)', todaySuffix: '(day)',
  },
};

// Tiles per sector. window: "period" (the chosen period), "open" (entities
// opened in the year before the period's end: what is open now), "lastday"
// (the last day of the period).
const SECTORS = [
  { id: 'publicservice', chart: 'publicservice.dossiers_received', tiles: [
    { kpi: 'publicservice.dossiers_received' }, { kpi: 'publicservice.on_time_rate' },
    { kpi: 'publicservice.online_share' }, { kpi: 'publicservice.overdue_now', window: 'open' } ] },
  { id: 'feedback', chart: 'feedback.reports_submitted', tiles: [
    { kpi: 'feedback.reports_open', window: 'open' }, { kpi: 'feedback.resolve_hours_median' },
    { kpi: 'feedback.resolved_within_deadline' }, { kpi: 'feedback.satisfaction' } ] },
  { id: 'health', chart: 'health.visits', tiles: [
    { kpi: 'health.visits' }, { kpi: 'health.emergencies' }, { kpi: 'health.bed_occupancy' }, { kpi: 'health.wait_minutes' } ] },
  { id: 'education', chart: 'education.attendance_rate', tiles: [
    { kpi: 'education.attendance_rate' }, { kpi: 'education.schools_not_reported', window: 'lastday' } ] },
  { id: 'traffic', chart: 'traffic.vehicles_per_hour', tiles: [
    { kpi: 'traffic.incidents' }, { kpi: 'traffic.casualties' }, { kpi: 'traffic.vehicles_per_hour' }, { kpi: 'traffic.mean_speed' } ] },
];

const TZ = 'Asia/Ho_Chi_Minh';
const state = { lang: 'vi', token: '', catalog: {}, areas: [], timer: null };

function t(key) { return (I18N[state.lang] || I18N.vi)[key] || key; }
function locale() { return state.lang === 'vi' ? 'vi-VN' : 'en-GB'; }

// Numbers the Vietnamese way (1.234,5) or the English way (1,234.5).
function fmtNumber(v, digits) {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits, minimumFractionDigits: 0 }).format(v);
}
function fmtValue(v, format) {
  if (v === null || v === undefined) return '—';
  switch (format) {
    case 'count': return fmtNumber(Math.round(v * 10) / 10, v >= 100 ? 0 : 1);
    case 'percent': return fmtNumber(v, 1);
    default: return fmtNumber(v, 1);
  }
}
// dd/mm/yyyy (and HH:MM) in the IOC's time zone, whatever the browser's.
function parts(d) {
  const p = {};
  new Intl.DateTimeFormat('en-GB', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
    .formatToParts(d).forEach((x) => { p[x.type] = x.value; });
  return p;
}
function fmtDate(d) { const p = parts(d); return `${p.day}/${p.month}/${p.year}`; }
function fmtDateTime(d) { const p = parts(d); return `${p.hour}:${p.minute} ${p.day}/${p.month}/${p.year}`; }
function isoDay(d) { const p = parts(d); return `${p.year}-${p.month}-${p.day}`; }

// Local midnight of the IOC's day containing d, as a Date (Vietnam has no DST: +07:00).
function dayStart(d) { return new Date(isoDay(d) + 'T00:00:00+07:00'); }
function addDays(d, n) { return new Date(d.getTime() + n * 86400000); }

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

function kpiURL(name, from, to, gran, extra) {
  const q = new URLSearchParams({ from: from.toISOString().replace('.000Z', 'Z'), to: to.toISOString().replace('.000Z', 'Z'), granularity: gran });
  const area = document.getElementById('area').value;
  const def = state.catalog[name];
  if (area && def && def.dimensions.includes('area')) q.set('area', area);
  Object.entries(extra || {}).forEach(([k, v]) => q.set(k, v));
  return `/v1/kpis/${encodeURIComponent(name)}?${q}`;
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
const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs) { const e = document.createElementNS(SVG, tag); Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, v)); return e; }

function drawChart(box, data, gran) {
  const W = 720; const H = 170; const L = 56; const B = 22; const T = 8;
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'data-points': String(data.series.length) });
  const vals = data.series.map((p) => (p.value === null ? 0 : p.value));
  const max = Math.max(1, ...vals);
  s.append(svg('line', { x1: L, y1: H - B, x2: W, y2: H - B, class: 'axis' }));
  s.append(svg('line', { x1: L, y1: T, x2: L, y2: H - B, class: 'axis' }));
  [0, 0.5, 1].forEach((f) => {
    const y = H - B - f * (H - B - T);
    const lbl = svg('text', { x: L - 6, y: y + 4, 'text-anchor': 'end', class: 'lbl' }); lbl.textContent = fmtNumber(max * f, 0); s.append(lbl);
  });
  const n = data.series.length || 1; const bw = (W - L - 4) / n;
  data.series.forEach((p, i) => {
    const v = p.value === null ? 0 : p.value;
    const h = (v / max) * (H - B - T);
    const r = svg('rect', { x: L + 2 + i * bw, y: H - B - h, width: Math.max(1, bw - 2), height: h, class: 'bar' });
    const tip = svg('title', {}); tip.textContent = `${fmtDateTime(new Date(p.t))}: ${fmtValue(p.value, data.format)}`; r.append(tip);
    s.append(r);
    const every = Math.ceil(n / 8);
    if (i % every === 0) {
      const d = new Date(p.t); const pp = parts(d);
      const lbl = svg('text', { x: L + 2 + i * bw, y: H - 6, class: 'lbl' });
      lbl.textContent = gran === 'hour' ? `${pp.hour}h` : gran === 'month' ? `${pp.month}/${pp.year}` : `${pp.day}/${pp.month}`;
      s.append(lbl);
    }
  });
  box.replaceChildren(s);
}

function ago(iso) {
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 90) return `${Math.round(s)} ${t('sec')} ${t('ago')}`;
  if (s < 5400) return `${Math.round(s / 60)} ${t('min')} ${t('ago')}`;
  if (s < 172800) return `${Math.round(s / 3600)} ${t('hour')} ${t('ago')}`;
  return `${Math.round(s / 86400)} ${t('day')} ${t('ago')}`;
}

function build() {
  const root = document.getElementById('sectors');
  root.replaceChildren();
  SECTORS.forEach((sec) => {
    const tiles = sec.tiles.filter((x) => state.catalog[x.kpi]);
    if (!tiles.length) return;
    const box = el('section', { class: 'sector', 'data-sector': sec.id },
      el('h2', {}, el('span', { 'data-i18n': sec.id }, t(sec.id)), el('span', { class: 'fresh', 'data-fresh': sec.id }, '')));
    const grid = el('div', { class: 'tiles' });
    tiles.forEach((x) => {
      grid.append(el('div', { class: 'tile', 'data-kpi': x.kpi }, el('div', { class: 'label' }, ''),
        el('div', {}, el('span', { class: 'value' }, '…'), el('span', { class: 'unit' }, ''))));
    });
    box.append(grid);
    if (state.catalog[sec.chart]) {
      box.append(el('div', { class: 'chart-title', 'data-chart-title': sec.chart }, ''), el('div', { 'data-chart': sec.chart }));
    }
    root.append(box);
  });
  const bd = document.getElementById('bd-kpi');
  bd.replaceChildren();
  const keep = bd.dataset.chosen || 'publicservice.dossiers_received';
  Object.values(state.catalog).filter((d) => d.dimensions.includes('area')).forEach((d) => bd.append(el('option', { value: d.name }, d.title[state.lang])));
  if (state.catalog[keep]) bd.value = keep;
}

function label(def) {
  return def.title[state.lang];
}

async function refresh() {
  const { from, to, gran } = period();
  const status = document.getElementById('status');
  const jobs = [];
  SECTORS.forEach((sec) => sec.tiles.forEach((x) => {
    const def = state.catalog[x.kpi]; if (!def) return;
    const tile = document.querySelector(`.tile[data-kpi="${x.kpi}"]`);
    let f = from; let tt = to;
    if (x.window === 'open') f = addDays(to, -90);
    if (x.window === 'lastday') { f = dayStart(new Date(to.getTime() - 1000)); }
    const g = pickGran(x.kpi, x.window === 'open' ? 'month' : 'day');
    jobs.push(api(kpiURL(x.kpi, f, tt, g)).then((r) => {
      tile.querySelector('.label').textContent = label(def, x.window);
      tile.querySelector('.value').textContent = fmtValue(r.total, def.format);
      tile.querySelector('.unit').textContent = r.total === null ? '' : r.unit[state.lang];
      tile.dataset.total = r.total === null ? '' : String(r.total);
      if (r.freshness && r.freshness.last_ingest_time) {
        const fr = document.querySelector(`[data-fresh="${sec.id}"]`);
        const age = (Date.now() - new Date(r.freshness.last_ingest_time).getTime()) / 1000;
        fr.className = 'fresh ' + (age < 900 ? 'ok' : age < 86400 ? 'warn' : 'bad');
        fr.textContent = `${t('updated')} ${ago(r.freshness.last_ingest_time)}`;
      } else {
        const fr = document.querySelector(`[data-fresh="${sec.id}"]`); fr.className = 'fresh bad'; fr.textContent = t('noData');
      }
    }));
  }));
  SECTORS.forEach((sec) => {
    const def = state.catalog[sec.chart]; if (!def) return;
    const g = pickGran(sec.chart, gran);
    let f = from;
    if (g !== gran && gran === 'hour') f = addDays(dayStart(to), -6); // a day-only KPI: show the week
    jobs.push(api(kpiURL(sec.chart, f, to, g)).then((r) => {
      document.querySelector(`[data-chart-title="${sec.chart}"]`).textContent =
        `${def.title[state.lang]} (${def.unit[state.lang]}) — ${fmtDate(f)} – ${fmtDate(new Date(to.getTime() - 1000))}`;
      drawChart(document.querySelector(`[data-chart="${sec.chart}"]`), r, g);
    }));
  });
  jobs.push(refreshBreakdown(from, to));
  const results = await Promise.allSettled(jobs);
  const failed = results.filter((r) => r.status === 'rejected');
  status.textContent = failed.length ? `${t('failed')}: ${failed[0].reason.message}` : `${t('loaded')} ${fmtDateTime(new Date())} · ${fmtDate(from)} – ${fmtDate(new Date(to.getTime() - 1000))}`;
  document.body.dataset.loaded = String(Date.now());
}

async function refreshBreakdown(from, to) {
  const name = document.getElementById('bd-kpi').value; if (!name) return;
  const def = state.catalog[name];
  const r = await api(kpiURL(name, from, to, pickGran(name, 'day'), { by: 'area' }));
  const names = Object.fromEntries(state.areas.map((a) => [a.code, a.name_vi]));
  const max = Math.max(1, ...(r.breakdown || []).map((p) => p.value || 0));
  const rows = (r.breakdown || []).map((p) => {
    const bar = el('div', {}); bar.style.width = `${Math.round(((p.value || 0) / max) * 200)}px`;
    return el('tr', { 'data-area': p.key }, el('td', {}, names[p.key] || p.key), el('td', { class: 'num' }, `${fmtValue(p.value, def.format)} ${def.unit[state.lang]}`),
      el('td', { class: 'barcell' }, bar));
  });
  document.querySelector('#bd-table tbody').replaceChildren(...rows);
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
  const cat = await api('/v1/kpis');
  state.catalog = Object.fromEntries(cat.kpis.map((d) => [d.name, d]));
  const ar = await api('/v1/areas');
  state.areas = ar.areas;
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
  clearInterval(state.timer);
  if (document.getElementById('auto').checked) state.timer = setInterval(() => refresh().catch(() => {}), 30000);
}

function init() {
  const h = new URLSearchParams(location.hash.slice(1));
  if (h.get('token')) { sessionStorage.setItem('iochub.token', h.get('token')); }
  if (h.get('lang')) state.lang = h.get('lang') === 'en' ? 'en' : 'vi';
  if (h.get('from') || h.get('to')) {
    document.getElementById('period').value = 'custom';
    document.getElementById('custom-range').hidden = false;
    document.getElementById('from').value = h.get('from') || '';
    document.getElementById('to').value = h.get('to') || '';
  }
  if (h.has('token')) history.replaceState(null, '', location.pathname);
  localStorage.removeItem('iochub.token'); // kept there by earlier versions
  state.token = sessionStorage.getItem('iochub.token') || '';
  document.getElementById('lang').addEventListener('click', () => {
    state.lang = state.lang === 'vi' ? 'en' : 'vi'; build(); applyLang(); refresh().catch(() => {});
  });
  document.getElementById('bd-kpi').addEventListener('change', (ev) => { ev.target.dataset.chosen = ev.target.value; });
  ['period', 'area', 'from', 'to', 'bd-kpi'].forEach((id) => document.getElementById(id).addEventListener('change', () => {
    document.getElementById('custom-range').hidden = document.getElementById('period').value !== 'custom';
    refresh().catch(() => {});
  }));
  document.getElementById('auto').addEventListener('change', schedule);
  document.getElementById('signout').addEventListener('click', () => {
    sessionStorage.removeItem('iochub.token');
    state.token = '';
    clearInterval(state.timer);
    document.getElementById('main').hidden = true;
    showLogin('');
  });
  document.getElementById('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.token = document.getElementById('token').value.trim();
    sessionStorage.setItem('iochub.token', state.token);
    start().catch(() => {});
  });
  applyLang();
  if (!state.token) { showLogin(''); return; }
  start().catch(() => {});
}

init();
