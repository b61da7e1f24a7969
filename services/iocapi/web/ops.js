// iochub ops page: streams, consumers, sources with freshness lights, dead
// letters with reasons, alerts, rates over the last hour.
'use strict';

const nf = new Intl.NumberFormat('vi-VN', { maximumFractionDigits: 1 });
let token = '';

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => { if (k === 'class') e.className = v; else e.setAttribute(k, v); });
  kids.forEach((k) => e.append(k));
  return e;
}
function when(iso) {
  if (!iso || iso.startsWith('0001')) return '—';
  const d = new Date(iso);
  const p = {};
  new Intl.DateTimeFormat('en-GB', { timeZone: 'Asia/Ho_Chi_Minh', day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' })
    .formatToParts(d).forEach((x) => { p[x.type] = x.value; });
  return `${p.hour}:${p.minute}:${p.second} ${p.day}/${p.month}/${p.year}`;
}
async function api(path) {
  const res = await fetch(path, { headers: { Authorization: 'Bearer ' + token } });
  if (res.status === 401) { showLogin('Mã quản trị không hợp lệ · not an admin token'); throw new Error('401'); }
  return res.json();
}
function table(id, head, rows) {
  const t = document.getElementById(id);
  t.replaceChildren(el('thead', {}, el('tr', {}, ...head.map((h) => el('th', {}, h)))), el('tbody', {}, ...rows));
}
function light(state) {
  const cls = state === 'ok' ? 'ok' : state === 'late' ? 'bad' : 'warn';
  return el('span', { class: 'fresh ' + cls, 'data-state': state }, state === 'ok' ? 'đúng hạn' : state === 'late' ? 'im lặng' : 'không đặt');
}
function drawRates(points) {
  const W = 720; const H = 120; const L = 50; const B = 18;
  const NS = 'http://www.w3.org/2000/svg';
  const s = document.createElementNS(NS, 'svg');
  s.setAttribute('viewBox', `0 0 ${W} ${H}`); s.setAttribute('class', 'chart'); s.setAttribute('data-points', String(points.length));
  const max = Math.max(1, ...points.map((p) => p.events_per_sec));
  const x = (i) => L + (i / Math.max(1, points.length - 1)) * (W - L - 4);
  const y = (v) => H - B - (v / max) * (H - B - 6);
  const path = points.map((p, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(p.events_per_sec).toFixed(1)}`).join(' ');
  const line = document.createElementNS(NS, 'path');
  line.setAttribute('d', path || 'M0,0'); line.setAttribute('fill', 'none'); line.setAttribute('stroke', '#1f5fa8'); line.setAttribute('stroke-width', '2');
  s.append(line);
  const lbl = document.createElementNS(NS, 'text');
  lbl.setAttribute('x', '4'); lbl.setAttribute('y', '12'); lbl.setAttribute('class', 'lbl'); lbl.textContent = `${nf.format(max)} sự kiện/s`;
  s.append(lbl);
  document.getElementById('rates').replaceChildren(s);
}
async function refresh() {
  const [snap, alerts, dlq, rates, me] = await Promise.all([api('/v1/ops/snapshot'), api('/v1/ops/alerts'), api('/v1/ops/dlq?limit=50'), api('/v1/ops/rates'), api('/v1/ops/whoami')]);
  const role = me.role === 'operator' ? 'vận hành · operator' : 'chỉ xem · viewer';
  document.getElementById('asof').textContent = `Lấy mẫu lúc · sampled at ${when(snap.at)} — ${me.name} (${role})`;
  document.getElementById('alerts').replaceChildren(...(alerts.firing.length ? alerts.firing.map((a) =>
    el('p', { class: 'error', 'data-alert': a.name }, `● ${a.name} — ${a.message} (từ ${when(a.since)})`)) : [el('p', { class: 'sub' }, 'Không có cảnh báo · no alert firing')]));
  drawRates(rates.rates);
  table('sources', ['Nguồn · source', 'Sự kiện/phút', 'Thư chết/phút', 'Sự kiện gần nhất', 'Kỳ vọng', 'Trạng thái'], (snap.sources || []).map((s) =>
    el('tr', { 'data-source': s.source }, el('td', {}, s.source), el('td', { class: 'num' }, nf.format(s.events_per_min)), el('td', { class: 'num' }, nf.format(s.rejected_per_min)),
      el('td', {}, when(s.last_event_time)), el('td', {}, s.expected_interval || '—'), el('td', {}, light(s.freshness)))));
  table('streams', ['Luồng · stream', 'Tin nhắn', 'Byte', 'Đầu', 'Cuối', 'Tốc độ/s'], (snap.streams || []).map((s) =>
    el('tr', { 'data-stream': s.name }, el('td', {}, s.name), el('td', { class: 'num' }, nf.format(s.messages)), el('td', { class: 'num' }, nf.format(s.bytes)),
      el('td', {}, when(s.first_time)), el('td', {}, when(s.last_time)), el('td', { class: 'num' }, nf.format(s.rate_per_sec)))));
  table('consumers', ['Bộ tiêu thụ', 'Luồng', 'Độ trễ (pending)', 'Chờ xác nhận', 'Gửi lại', 'Hoạt động gần nhất'], (snap.consumers || []).map((c) =>
    el('tr', { 'data-consumer': c.name }, el('td', {}, c.name), el('td', {}, c.stream), el('td', { class: 'num' }, nf.format(c.pending)),
      el('td', { class: 'num' }, nf.format(c.ack_pending)), el('td', { class: 'num' }, nf.format(c.redelivered)), el('td', {}, when(c.last_active)))));
  const modes = { pull: 'kéo · pull', push: 'đẩy · push', nats: 'NATS' };
  const subs = snap.subscriptions || [];
  table('subscriptions', ['Thuê bao · subscription', 'Cơ quan · agency', 'Cách nhận · mode', 'Đã chuyển · delivered', 'Đang chờ · pending', 'Gửi lại · retries',
    'Thư chết · dead letters', 'Lần chuyển gần nhất', 'Lỗi gần nhất · last error'], subs.length ? subs.map((s) =>
    el('tr', { 'data-subscription': s.name }, el('td', {}, s.name), el('td', {}, s.agency), el('td', {}, modes[s.mode] + (s.paused ? ' — tạm dừng · paused' : '')),
      el('td', { class: 'num' }, nf.format(s.delivered_total)), el('td', { class: 'num' }, nf.format(s.pending)), el('td', { class: 'num' }, nf.format(s.retries_total)),
      el('td', { class: 'num' }, nf.format(s.dead_letters)), el('td', {}, when(s.last_delivery)), el('td', { class: 'reason' }, s.last_error || '—')))
    : [el('tr', {}, el('td', { colspan: '9', class: 'sub' }, 'Chưa có thuê bao · no subscription'))]);
  const ch = snap.clickhouse || {};
  document.getElementById('chstats').replaceChildren(el('span', { class: 'fresh ' + (ch.reachable ? 'ok' : 'bad'), 'data-ch': ch.reachable ? 'up' : 'down' },
    ch.reachable ? 'kết nối tốt · reachable' : 'mất kết nối · unreachable ' + (ch.error || '')),
  ` — ${nf.format(ch.rows_inserted_total || 0)} dòng đã ghi · rows inserted, ${nf.format(ch.insert_rate_per_sec || 0)} dòng/s, ` +
    `${nf.format(ch.insert_errors_total || 0)} lỗi ghi · insert errors, lô gần nhất · last batch ${nf.format(ch.last_batch_ms || 0)} ms`);
  table('tables', ['Bảng · table', 'Dòng · rows', 'Byte'], Object.entries(ch.tables || {}).sort().map(([t, v]) =>
    el('tr', { 'data-table': t }, el('td', {}, t), el('td', { class: 'num' }, nf.format(v.rows)), el('td', { class: 'num' }, nf.format(v.bytes)))));
  document.getElementById('dlqstats').textContent = `Tổng · depth ${nf.format(dlq.stats.depth || 0)} — ` +
    Object.entries(dlq.stats.by_reason || {}).map(([k, v]) => `${k}: ${v}`).join(' · ');
  table('dlq', ['#', 'Thời điểm', 'Loại', 'Nguồn / id', 'Lý do · reason'], dlq.letters.slice().reverse().map((d) =>
    el('tr', { 'data-seq': String(d.seq) }, el('td', {}, String(d.seq)), el('td', {}, when(d.time)), el('td', {}, d.subject),
      el('td', {}, `${d.source || ''} ${d.id || ''}`), el('td', { class: 'reason' }, d.reason))));
  document.body.dataset.loaded = String(Date.now());
}
function showLogin(msg) {
  document.getElementById('main').hidden = true;
  document.getElementById('login').hidden = false;
  document.getElementById('login-error').textContent = msg || '';
}
function start() {
  document.getElementById('login').hidden = true;
  document.getElementById('main').hidden = false;
  refresh().catch(() => {});
  setInterval(() => refresh().catch(() => {}), 10000);
}
const h = new URLSearchParams(location.hash.slice(1));
if (h.get('token')) { sessionStorage.setItem('iochub.admin', h.get('token')); history.replaceState(null, '', location.pathname); }
localStorage.removeItem('iochub.admin'); // kept there by earlier versions
token = sessionStorage.getItem('iochub.admin') || '';
document.getElementById('signout').addEventListener('click', () => {
  sessionStorage.removeItem('iochub.admin'); token = ''; location.reload();
});
document.getElementById('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault(); token = document.getElementById('token').value.trim(); sessionStorage.setItem('iochub.admin', token); start();
});
if (token) start(); else showLogin('');
