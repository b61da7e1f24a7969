// iochub ops page: alerts (Vietnamese, English with the switch, times in
// the IOC's zone), rates, what each producer sent and had refused, sources
// with freshness lights, streams, consumers, subscriptions, ClickHouse,
// dead letters with replay and purge for operators.
'use strict';

const TZ = 'Asia/Ho_Chi_Minh';
const state = { lang: 'vi', token: '', role: '', chart: null, armed: null };
const L = {
  vi: { noAlert: 'Không có cảnh báo', since: 'từ', clearing: 'điều kiện đã hết lúc', resolvesAfter: 'sẽ đóng sau thời gian chờ',
    firing: 'phát', resolved: 'đã đóng', ok: 'đúng hạn', late: 'im lặng', starting: 'chờ kỳ đầu', unknown: 'không đặt SLA',
    events: 'Sự kiện/s', letters: 'Thư chết/s', perSec: 'sự kiện/giây', replay: 'Gửi lại', purge: 'Xoá', confirm: 'Xác nhận xoá?',
    replayAll: 'Gửi lại tất cả', lang: 'English', noProducer: 'Chưa có yêu cầu nào', none: 'không', done: 'Đã thực hiện', failed: 'Không thực hiện được' },
  en: { noAlert: 'No alert firing', since: 'since', clearing: 'condition gone at', resolvesAfter: 'resolves after the delay',
    firing: 'firing', resolved: 'resolved', ok: 'on time', late: 'silent', starting: 'first interval', unknown: 'no SLA set',
    events: 'Events/s', letters: 'Dead letters/s', perSec: 'events/s', replay: 'Replay', purge: 'Purge', confirm: 'Confirm purge?',
    replayAll: 'Replay all', lang: 'Tiếng Việt', noProducer: 'No request yet', none: 'none', done: 'Done', failed: 'Failed' },
};
function t(k) { return L[state.lang][k] || k; }
function nf() { return new Intl.NumberFormat(state.lang === 'vi' ? 'vi-VN' : 'en-GB', { maximumFractionDigits: 1 }); }

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => { if (k === 'class') e.className = v; else e.setAttribute(k, v); });
  kids.forEach((k) => e.append(k));
  return e;
}
function parts(d) {
  const p = {};
  new Intl.DateTimeFormat('en-GB', { timeZone: TZ, day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' })
    .formatToParts(d).forEach((x) => { p[x.type] = x.value; });
  return p;
}
function when(iso) {
  if (!iso || iso.startsWith('0001')) return '—';
  const p = parts(new Date(iso));
  return `${p.hour}:${p.minute}:${p.second} ${p.day}/${p.month}/${p.year}`;
}
async function api(path, method) {
  const res = await fetch(path, { method: method || 'GET', headers: { Authorization: 'Bearer ' + state.token } });
  if (res.status === 401) { showLogin('Mã quản trị không hợp lệ · not an admin token'); throw new Error('401'); }
  const body = await res.json();
  if (!res.ok) throw new Error(body.detail || res.statusText);
  return body;
}
function table(id, head, rows) {
  document.getElementById(id).replaceChildren(el('thead', {}, el('tr', {}, ...head.map((h) => el('th', {}, h)))), el('tbody', {}, ...rows));
}
// Freshness: green on time, red silent; grey (neutral) while the first
// interval since the start runs and where no SLA is set.
// A Go duration ("1h0m0s", "2m0s") as people write it.
function dur(s) {
  if (!s) return '—';
  const m = /^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:([\d.]+)s)?$/.exec(s);
  if (!m) return s;
  const [hh, mm, ss] = [Number(m[1] || 0), Number(m[2] || 0), Number(m[3] || 0)];
  const u = state.lang === 'vi' ? ['giờ', 'phút', 'giây'] : ['h', 'min', 's'];
  return [[hh, u[0]], [mm, u[1]], [ss, u[2]]].filter(([v]) => v).map(([v, n]) => `${nf().format(v)} ${n}`).join(' ') || s;
}
function light(s) {
  const cls = { ok: 'ok', late: 'bad' }[s] || 'neutral';
  return el('span', { class: 'fresh ' + cls, 'data-state': s }, t(s));
}
function drawRates(points) {
  const box = document.getElementById('rates');
  box.dataset.points = String(points.length);
  if (!window.echarts) return;
  if (!state.chart) state.chart = window.echarts.init(box, null, { renderer: 'svg' });
  const series = (key) => points.map((p) => [p.t, p[key]]);
  // Under ten minutes of samples (just started): seconds on the time axis.
  const short = points.length < 2 || new Date(points[points.length - 1].t) - new Date(points[0].t) < 600000;
  state.chart.setOption({
    animation: false,
    grid: { left: 64, right: 20, top: 30, bottom: 40 },
    legend: { data: [t('events'), t('letters')], top: 0 },
    tooltip: { trigger: 'axis', renderMode: 'richText' },
    xAxis: { type: 'time', name: state.lang === 'vi' ? 'Giờ' : 'Time', nameLocation: 'middle', nameGap: 26,
      axisLabel: { formatter: (v) => { const p = parts(new Date(v)); return short ? `${p.hour}:${p.minute}:${p.second}` : `${p.hour}:${p.minute}`; } } },
    yAxis: { type: 'value', name: t('perSec'), min: 0, axisLabel: { formatter: (v) => nf().format(v) } },
    series: [{ name: t('events'), type: 'line', showSymbol: false, data: series('events_per_sec') },
      { name: t('letters'), type: 'line', showSymbol: false, data: series('dead_letters_per_sec'), lineStyle: { color: '#c62828' }, itemStyle: { color: '#c62828' } }],
  }, true);
}
function alertRow(a) {
  const text = (a.text && a.text[state.lang]) || a.message;
  const note = a.clearing_since ? ` — ${t('clearing')} ${when(a.clearing_since)}, ${t('resolvesAfter')}` : '';
  return el('p', { class: a.clearing_since ? 'alert clearing' : 'alert', 'data-alert': a.name, 'data-subject': a.subject || '' },
    `● ${a.name} — ${text} (${t('since')} ${when(a.since)})${note}`);
}
async function act(path, method) {
  const out = document.getElementById('action');
  try { await api(path, method); out.textContent = t('done'); out.className = 'sub'; } catch (e) { out.textContent = `${t('failed')}: ${e.message}`; out.className = 'error'; }
  refresh().catch(() => {});
}
function letterActions(d) {
  if (state.role !== 'operator') return el('td', {});
  const replay = el('button', { type: 'button', 'data-replay': String(d.seq) }, t('replay'));
  replay.addEventListener('click', () => act(`/v1/ops/dlq/${d.seq}/replay`, 'POST'));
  const purge = el('button', { type: 'button', 'data-purge': String(d.seq) }, t('purge'));
  purge.addEventListener('click', () => { // two clicks: the second confirms
    if (state.armed !== d.seq) { state.armed = d.seq; purge.textContent = t('confirm'); return; }
    state.armed = null; act(`/v1/ops/dlq/${d.seq}`, 'DELETE');
  });
  return el('td', {}, d.replayable === false ? '' : replay, ' ', purge);
}
async function refresh() {
  const [snap, alerts, dlq, rates, me] = await Promise.all([api('/v1/ops/snapshot'), api('/v1/ops/alerts'), api('/v1/ops/dlq?limit=50'), api('/v1/ops/rates'), api('/v1/ops/whoami')]);
  state.role = me.role;
  const f = nf();
  const role = me.role === 'operator' ? 'vận hành · operator' : 'chỉ xem · viewer';
  document.getElementById('asof').textContent = `Lấy mẫu lúc · sampled at ${when(snap.at)} — ${me.name} (${role})`;
  document.getElementById('alerts').replaceChildren(...(alerts.firing.length ? alerts.firing.map(alertRow) : [el('p', { class: 'sub', 'data-no-alert': '' }, t('noAlert'))]));
  table('alert-history', ['Lúc · at', 'Cảnh báo · alert', 'Trạng thái · state', 'Nội dung · text'], alerts.history.slice(-15).reverse().map((e) =>
    el('tr', { 'data-change': e.state }, el('td', {}, when(e.at)), el('td', {}, e.name), el('td', {}, t(e.state)), el('td', { class: 'reason' }, (e.text && e.text[state.lang]) || e.message))));
  drawRates(rates.rates);
  const producers = snap.producers || [];
  table('producers', ['Bên gửi · producer', 'Đã nhận · accepted', 'Bị từ chối · refused', 'Theo lý do · by reason', 'Lần từ chối gần nhất · last refused'], producers.length ? producers.map((p) => {
    const rej = Object.values(p.rejected_total || {}).reduce((a, b) => a + b, 0);
    const reasons = Object.entries(p.rejected_total || {}).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}: ${f.format(v)}`).join(' · ');
    return el('tr', { 'data-producer': p.producer, class: rej > 0 && p.accepted_total === 0 ? 'refused' : '' }, el('td', {}, p.producer), el('td', { class: 'num' }, f.format(p.accepted_total)),
      el('td', { class: 'num' }, f.format(rej)), el('td', { class: 'reason' }, reasons || t('none')), el('td', {}, p.last_rejected ? `${when(p.last_rejected)} (HTTP ${p.last_status})` : '—'));
  }) : [el('tr', {}, el('td', { colspan: '5', class: 'sub' }, t('noProducer')))]);
  table('sources', ['Nguồn · source', 'Sự kiện/phút', 'Thư chết/phút', 'Sự kiện gần nhất', 'Kỳ vọng', 'Trạng thái'], (snap.sources || []).map((s) =>
    el('tr', { 'data-source': s.source }, el('td', {}, s.source), el('td', { class: 'num' }, f.format(s.events_per_min)), el('td', { class: 'num' }, f.format(s.rejected_per_min)),
      el('td', {}, when(s.last_event_time)), el('td', {}, dur(s.expected_interval)), el('td', {}, light(s.freshness)))));
  table('streams', ['Luồng · stream', 'Tin nhắn', 'Byte', 'Đầu', 'Cuối', 'Tốc độ/s'], (snap.streams || []).map((s) =>
    el('tr', { 'data-stream': s.name }, el('td', {}, s.name), el('td', { class: 'num' }, f.format(s.messages)), el('td', { class: 'num' }, f.format(s.bytes)),
      el('td', {}, when(s.first_time)), el('td', {}, when(s.last_time)), el('td', { class: 'num' }, f.format(s.rate_per_sec)))));
  table('consumers', ['Bộ tiêu thụ', 'Luồng', 'Độ trễ (pending)', 'Chờ xác nhận', 'Gửi lại', 'Hoạt động gần nhất'], (snap.consumers || []).map((c) =>
    el('tr', { 'data-consumer': c.name }, el('td', {}, c.name), el('td', {}, c.stream), el('td', { class: 'num' }, f.format(c.pending)),
      el('td', { class: 'num' }, f.format(c.ack_pending)), el('td', { class: 'num' }, f.format(c.redelivered)), el('td', {}, when(c.last_active)))));
  const modes = { pull: 'kéo · pull', push: 'đẩy · push', nats: 'NATS' };
  const subs = snap.subscriptions || [];
  table('subscriptions', ['Thuê bao · subscription', 'Cơ quan · agency', 'Cách nhận · mode', 'Đã chuyển · delivered', 'Đang chờ · pending', 'Gửi lại · retries',
    'Thư chết · dead letters', 'Lần chuyển gần nhất', 'Lỗi gần nhất · last error'], subs.length ? subs.map((s) =>
    el('tr', { 'data-subscription': s.name }, el('td', {}, s.name), el('td', {}, s.agency), el('td', {}, modes[s.mode] + (s.paused ? ' — tạm dừng · paused' : '')),
      el('td', { class: 'num' }, f.format(s.delivered_total)), el('td', { class: 'num' }, f.format(s.pending)), el('td', { class: 'num' }, f.format(s.retries_total)),
      el('td', { class: 'num' }, f.format(s.dead_letters)), el('td', {}, when(s.last_delivery)), el('td', { class: 'reason' }, s.last_error || '—')))
    : [el('tr', {}, el('td', { colspan: '9', class: 'sub' }, 'Chưa có thuê bao · no subscription'))]);
  const ch = snap.clickhouse || {};
  document.getElementById('chstats').replaceChildren(el('span', { class: 'fresh ' + (ch.reachable ? 'ok' : 'bad'), 'data-ch': ch.reachable ? 'up' : 'down' },
    ch.reachable ? 'kết nối tốt · reachable' : 'mất kết nối · unreachable ' + (ch.error || '')),
  ` — ${f.format(ch.rows_inserted_total || 0)} dòng đã ghi · rows inserted, ${f.format(ch.insert_rate_per_sec || 0)} dòng/s, ` +
    `${f.format(ch.insert_errors_total || 0)} lỗi ghi · insert errors, lô gần nhất · last batch ${f.format(ch.last_batch_ms || 0)} ms`);
  table('tables', ['Bảng · table', 'Dòng · rows', 'Byte'], Object.entries(ch.tables || {}).sort().map(([tb, v]) =>
    el('tr', { 'data-table': tb }, el('td', {}, tb), el('td', { class: 'num' }, f.format(v.rows)), el('td', { class: 'num' }, f.format(v.bytes)))));
  document.getElementById('dlqstats').textContent = `Tổng · depth ${f.format(dlq.stats.depth || 0)} — ` +
    Object.entries(dlq.stats.by_reason || {}).map(([k, v]) => `${k}: ${v}`).join(' · ');
  const all = document.getElementById('replay-all');
  all.hidden = state.role !== 'operator' || !(dlq.stats.depth > 0);
  all.textContent = t('replayAll');
  table('dlq', ['#', 'Thời điểm', 'Loại', 'Nguồn / id', 'Lý do · reason', ''], dlq.letters.slice().reverse().map((d) =>
    el('tr', { 'data-seq': String(d.seq) }, el('td', {}, String(d.seq)), el('td', {}, when(d.time)), el('td', {}, d.subject),
      el('td', {}, `${d.source || ''} ${d.id || ''}`), el('td', { class: 'reason' }, d.reason), letterActions(d))));
  document.getElementById('lang').textContent = t('lang');
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
// What the Content-Security-Policy refused, for the browser tests.
document.addEventListener('securitypolicyviolation', (ev) => {
  document.body.dataset.csp = `${document.body.dataset.csp || ''}${ev.violatedDirective} ${ev.blockedURI};`;
});
const h = new URLSearchParams(location.hash.slice(1));
if (h.get('token')) { sessionStorage.setItem('iochub.admin', h.get('token')); }
if (h.get('lang') === 'en') state.lang = 'en';
if (h.has('token')) history.replaceState(null, '', location.pathname);
localStorage.removeItem('iochub.admin'); // kept there by earlier versions
state.token = sessionStorage.getItem('iochub.admin') || '';
document.getElementById('signout').addEventListener('click', () => {
  sessionStorage.removeItem('iochub.admin'); state.token = ''; location.reload();
});
document.getElementById('lang').addEventListener('click', () => { state.lang = state.lang === 'vi' ? 'en' : 'vi'; refresh().catch(() => {}); });
document.getElementById('replay-all').addEventListener('click', () => act('/v1/ops/dlq/replay', 'POST'));
window.addEventListener('resize', () => { if (state.chart) state.chart.resize(); });
document.getElementById('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault(); state.token = document.getElementById('token').value.trim(); sessionStorage.setItem('iochub.admin', state.token); start();
});
if (state.token) start(); else showLogin('');
