// The citizen field-report portal's public results: aggregates only, from
// GET /v1/public/feedback (no token). A group under the minimum size shows
// "—", so that no citizen can be picked out of a small count.
'use strict';

const categories = {
  moi_truong: 'Môi trường', environment: 'Môi trường',
  giao_thong: 'Giao thông', traffic: 'Giao thông',
  trat_tu_do_thi: 'Trật tự đô thị', urban_order: 'Trật tự đô thị',
  an_ninh: 'An ninh, trật tự', security: 'An ninh, trật tự',
  dien_nuoc: 'Điện, nước', xay_dung: 'Xây dựng', public_service: 'Dịch vụ công',
};

const count = new Intl.NumberFormat('vi-VN', { maximumFractionDigits: 0 });
const percent = new Intl.NumberFormat('vi-VN', { maximumFractionDigits: 1 });
const date = new Intl.DateTimeFormat('vi-VN', { day: '2-digit', month: '2-digit', year: 'numeric', timeZone: 'Asia/Ho_Chi_Minh' });

function show(v, fmt, unit) {
  return v === null || v === undefined || Number.isNaN(v) ? '—' : fmt.format(v) + (unit || '');
}

function row(name, f) {
  const tr = document.createElement('tr');
  if (f.suppressed) tr.className = 'suppressed';
  for (const [text, num] of [[name, false], [show(f.received, count), true], [show(f.resolved, count), true], [show(f.on_time_rate, percent, ' %'), true]]) {
    const td = document.createElement('td');
    td.textContent = text;
    if (num) td.className = 'num';
    tr.appendChild(td);
  }
  return tr;
}

function fill(id, groups, name) {
  const body = document.querySelector('#' + id + ' tbody');
  body.replaceChildren(...groups.map((g) => row(name(g), g)));
}

async function load() {
  const q = new URLSearchParams(location.search);
  const url = '/v1/public/feedback' + (q.get('to') ? '?to=' + encodeURIComponent(q.get('to')) : '');
  try {
    const resp = await fetch(url);
    if (!resp.ok) throw new Error((await resp.json()).detail || resp.statusText);
    const d = await resp.json();
    const last = new Date(new Date(d.to).getTime() - 1);
    document.getElementById('period').textContent = d.days + ' ngày, từ ' + date.format(new Date(d.from)) + ' đến ' + date.format(last);
    document.querySelector('#t-received .value').textContent = show(d.total.received, count);
    document.querySelector('#t-resolved .value').textContent = show(d.total.resolved, count);
    document.querySelector('#t-ontime .value').textContent = show(d.total.on_time_rate, percent, ' %');
    fill('by-category', d.by_category, (g) => categories[g.key] || g.key);
    fill('by-area', d.by_area, (g) => g.name_vi || g.key);
    document.getElementById('note').textContent = 'Chỉ công bố số liệu tổng hợp. Nhóm có dưới ' + d.min_group +
      ' phản ánh hiển thị "—" để không thể nhận ra người phản ánh. "Trong hạn": tỷ lệ phản ánh được giải quyết không muộn hơn hạn xử lý, trong số phản ánh đã giải quyết có hạn xử lý.';
  } catch (e) {
    document.getElementById('error').textContent = 'Không tải được số liệu: ' + e.message;
  }
  document.body.dataset.loaded = '1';
}

load();
