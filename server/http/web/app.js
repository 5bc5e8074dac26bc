// nnlab dashboard: the jobs table (polled), one selected job's charts (live
// over Server-Sent Events, replayed from the start, resumed after a
// reconnect by the browser's Last-Event-ID), and an overlay of the training
// loss of marked jobs. Everything comes from this server; no CDN.
'use strict';

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd',
                '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const MAX_OVERLAY = 4;  // Browsers allow ~6 connections per host.
const num = (v) => (v === undefined || v === null ? 0 : Number(v));
const short = (s) => String(s || '').replace(/^[A-Z]+_STATE_|^OPTIMIZER_/, '').toLowerCase();

let jobs = [];
let selected = null;     // {id, series, source, charts}
const overlay = new Map();  // id -> {series, source}
let overlayChart = null;
let dirty = false;

// One job's events as aligned columns: x = step; every series has a value
// or null at each step (uPlot's aligned data).
function newSeries() {
  return {seq: -1, x: [], cols: {}, layers: [], layerIndex: {}, ended: false, state: '',
          bptt: {}, bpttStep: 0};
}
function col(s, name) {
  if (!s.cols[name]) s.cols[name] = new Array(s.x.length).fill(null);
  return s.cols[name];
}
function row(s, step) {
  const n = s.x.length;
  if (n > 0 && s.x[n - 1] === step) return n - 1;
  if (n > 0 && step < s.x[n - 1]) return -1;  // Out of order: ignore.
  s.x.push(step);
  for (const k in s.cols) s.cols[k].push(null);
  return n;
}
function addEvent(s, e) {
  const seq = num(e.sequence);
  if (seq <= s.seq) return false;  // Seen before a reconnect.
  s.seq = seq;
  const step = num(e.step);
  if (e.phase === 'PHASE_STATE') { s.state = short(e.job_state); return true; }
  const i = row(s, step);
  if (i < 0) return false;
  if (e.phase === 'PHASE_TRAIN') {
    col(s, 'train_loss')[i] = num(e.loss);
    col(s, 'train_acc')[i] = num(e.accuracy) >= 0 ? num(e.accuracy) : null;  // -1: none.
  } else if (e.phase === 'PHASE_EVAL') {
    col(s, 'test_loss')[i] = num(e.loss);
    col(s, 'test_acc')[i] = num(e.accuracy) >= 0 ? num(e.accuracy) : null;
  } else if (e.phase === 'PHASE_GAN_D') {
    col(s, 'd_loss')[i] = num(e.loss);
    col(s, 'd_real')[i] = num(e.d_real);
    col(s, 'd_fake')[i] = num(e.d_fake);
  } else if (e.phase === 'PHASE_GAN_G') {
    col(s, 'g_loss')[i] = num(e.loss);
  }
  // By name: a GAN's D and G events carry different layers.
  (e.layers || []).forEach((l) => {
    let j = s.layerIndex[l.name];
    if (j === undefined) {
      j = s.layerIndex[l.name] = s.layers.length;
      s.layers.push(l.name);
    }
    const pos = (v) => (v > 0 ? v : null);  // Log scales take no zeros.
    col(s, 'speed' + j)[i] = pos(num(l.grad_bias_norm) || num(l.grad_weight_norm));
    col(s, 'ratio' + j)[i] = pos(num(l.update_ratio));
    const sat = num(l.saturated_fraction);  // Negative: not measured.
    col(s, 'sat' + j)[i] = sat >= 0 ? sat : null;
    // Recurrent layers: ||dE/dh_t|| over the sequence (the lecture's
    // vanishing / exploding gradients through time); the latest one counts.
    const norms = l.timestep_grad_norms || [];
    if (norms.length > 0) {
      s.bptt[l.name] = {t: (l.timestep_indices || []).map(Number), v: norms.map(Number)};
      s.bpttStep = step;
    }
  });
  return true;
}

function openStream(id, s, onChange) {
  const src = new EventSource('/api/jobs/' + encodeURIComponent(id) + '/events');
  src.onmessage = (m) => { if (addEvent(s, JSON.parse(m.data))) onChange(); };
  src.addEventListener('end', () => { s.ended = true; src.close(); onChange(); });
  return src;
}

function size(el) {
  return {width: Math.max(300, el.clientWidth || 500), height: 240};
}
function makeChart(el, s, names, labels, log) {
  el.textContent = '';
  const opts = Object.assign(size(el), {
    scales: {x: {time: false}, y: log ? {distr: 3} : {}},
    // Log axes in powers of ten (the default format rounds 1e-4 to 0).
    axes: [{label: 'step'}, log ? {values: (u, vals) => vals.map((v) => (v == null ? '' : v.toExponential(0)))} : {}],
    series: [{label: 'step'}].concat(names.map((n, k) => ({
      label: labels[k], stroke: COLORS[k % COLORS.length], spanGaps: true,
      points: {show: false}}))),
  });
  const chart = new uPlot(opts, [s.x].concat(names.map((n) => col(s, n))), el);
  chart.names = names;
  return chart;
}

function buildCharts() {
  const s = selected.series;
  const L = s.layers;
  const idx = L.map((_, j) => j);
  selected.layerCount = L.length;
  selected.gan = 'd_loss' in s.cols;
  document.getElementById('gan').hidden = !selected.gan;
  selected.charts = [
    makeChart(document.getElementById('chart-loss'), s, ['train_loss', 'test_loss'], ['training', 'test'], false),
    makeChart(document.getElementById('chart-acc'), s, ['train_acc', 'test_acc'], ['training', 'test'], false),
    makeChart(document.getElementById('chart-speed'), s, idx.map((j) => 'speed' + j), L, true),
    makeChart(document.getElementById('chart-ratio'), s, idx.map((j) => 'ratio' + j), L, true),
    makeChart(document.getElementById('chart-sat'), s, idx.map((j) => 'sat' + j), L, false),
  ];
  if (selected.gan) {
    selected.charts.push(makeChart(document.getElementById('chart-gan'), s,
        ['d_loss', 'g_loss', 'd_real', 'd_fake'], ['D loss', 'G loss', 'D(x)', 'D(G(z))'], false));
  }
}

// One x axis (t) over the recurrent layers' latest per-time-step norms.
function renderBptt() {
  const s = selected.series;
  const names = Object.keys(s.bptt);
  const fig = document.getElementById('bptt');
  fig.hidden = names.length === 0;
  if (names.length === 0 || selected.bpttDrawn === s.bpttStep) return;
  selected.bpttDrawn = s.bpttStep;
  const ts = [...new Set(names.flatMap((n) => s.bptt[n].t))].sort((a, b) => a - b);
  const data = [ts].concat(names.map((n) => {
    const at = new Map(s.bptt[n].t.map((t, k) => [t, s.bptt[n].v[k]]));
    return ts.map((t) => (at.has(t) && at.get(t) > 0 ? at.get(t) : null));
  }));
  const el = document.getElementById('chart-bptt');
  if (!selected.bpttChart || selected.bpttChart.key !== names.join()) {
    el.textContent = '';
    selected.bpttChart = new uPlot(Object.assign(size(el), {
      scales: {x: {time: false}, y: {distr: 3}},
      axes: [{label: 't'}, {values: (u, vals) => vals.map((v) => (v == null ? '' : v.toExponential(0)))}],
      series: [{label: 't'}].concat(names.map((n, k) => ({
        label: n, stroke: COLORS[k % COLORS.length], spanGaps: true, points: {show: false}}))),
    }), data, el);
    selected.bpttChart.key = names.join();
  } else {
    selected.bpttChart.setData(data);
  }
}

function renderBars() {
  const s = selected.series;
  const bars = document.getElementById('bars');
  const latest = s.layers.map((_, j) => {
    const c = s.cols['speed' + j] || [];
    for (let i = c.length - 1; i >= 0; --i) if (c[i] !== null) return c[i];
    return 0;
  });
  if (bars.children.length !== latest.length) {
    bars.textContent = '';
    s.layers.forEach((name) => {
      const b = document.createElement('div');
      b.className = 'bar';
      const label = document.createElement('span');
      label.textContent = name;
      b.appendChild(label);
      bars.appendChild(b);
    });
  }
  // Log scale over five decades below the largest.
  const top = Math.max(...latest, 1e-30);
  latest.forEach((v, j) => {
    const h = v > 0 ? Math.max(0, 1 + Math.log10(v / top) / 5) : 0;
    bars.children[j].style.height = (100 * h).toFixed(1) + '%';
    bars.children[j].title = s.layers[j] + ': ' + v.toExponential(3);
  });
}

function render() {
  if (!dirty) return;
  dirty = false;
  if (selected) {
    const s = selected.series;
    document.getElementById('job-state').textContent = s.state + (s.ended ? ' (ended)' : '');
    if (!selected.charts || selected.layerCount !== s.layers.length ||
        selected.gan !== ('d_loss' in s.cols)) {
      if (s.x.length > 0) buildCharts();
    } else {
      for (const c of selected.charts) c.setData([s.x].concat(c.names.map((n) => col(s, n))));
    }
    renderBars();
    renderBptt();
  }
  renderOverlay();
}

function renderOverlay() {
  const section = document.getElementById('overlay');
  section.hidden = overlay.size === 0;
  if (overlay.size === 0) return;
  // One x axis over all marked jobs' steps.
  const ids = [...overlay.keys()];
  const steps = [...new Set(ids.flatMap((id) => overlay.get(id).series.x))].sort((a, b) => a - b);
  const data = [steps].concat(ids.map((id) => {
    const s = overlay.get(id).series;
    const at = new Map(s.x.map((x, i) => [x, (s.cols.train_loss || [])[i]]));
    return steps.map((x) => (at.has(x) ? at.get(x) : null));
  }));
  const el = document.getElementById('chart-overlay');
  if (!overlayChart || overlayChart.ids !== ids.join()) {
    el.textContent = '';
    overlayChart = new uPlot(Object.assign(size(el), {
      scales: {x: {time: false}},
      series: [{label: 'step'}].concat(ids.map((id, k) => {
        const j = jobs.find((x) => x.job_id === id);
        return {label: id + (j && j.spec.label ? ' ' + j.spec.label : ''),
                stroke: COLORS[k % COLORS.length], spanGaps: true, points: {show: false}};
      })),
    }), data, el);
    overlayChart.ids = ids.join();
  } else {
    overlayChart.setData(data);
  }
}

function select(id) {
  if (selected && selected.id === id) return;
  if (selected && selected.source) selected.source.close();
  selected = {id, series: newSeries(), charts: null};
  selected.source = openStream(id, selected.series, () => { dirty = true; });
  document.getElementById('detail').hidden = false;
  document.getElementById('job-title').textContent = id;
  document.getElementById('bars').textContent = '';
  renderTable();
}

function toggleOverlay(id, on) {
  if (on && !overlay.has(id) && overlay.size < MAX_OVERLAY) {
    const s = newSeries();
    overlay.set(id, {series: s, source: openStream(id, s, () => { dirty = true; })});
  } else if (!on && overlay.has(id)) {
    overlay.get(id).source.close();
    overlay.delete(id);
  }
  overlayChart = null;
  dirty = true;
  renderTable();
}

async function act(id, action) {
  const r = await fetch('/api/jobs/' + encodeURIComponent(id) + '/' + action,
                        {method: 'POST', headers: {'X-Nnlab-Request': '1'}});
  const status = document.getElementById('status');
  status.textContent = r.ok ? action + ': ' + id : (await r.json()).error;
  refresh();
}

function cell(tr, text, cls) {
  const td = document.createElement('td');
  if (text instanceof Node) td.appendChild(text); else td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function renderTable() {
  const body = document.querySelector('#jobs tbody');
  body.textContent = '';
  for (const j of jobs) {
    const id = j.job_id;
    const tr = document.createElement('tr');
    tr.dataset.job = id;
    if (selected && selected.id === id) tr.className = 'selected';
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = overlay.has(id);
    box.onchange = () => toggleOverlay(id, box.checked);
    cell(tr, box);
    cell(tr, id, 'job').onclick = () => select(id);
    cell(tr, short(j.state), 'state');
    cell(tr, j.spec.model_id);
    cell(tr, j.spec.dataset);
    cell(tr, short(j.spec.optimizer && j.spec.optimizer.kind));
    const p = document.createElement('progress');
    p.max = Math.max(1, num(j.total_steps));
    p.value = num(j.step);
    const prog = cell(tr, p);
    prog.appendChild(document.createTextNode(' ' + num(j.step) + '/' + num(j.total_steps)));
    cell(tr, num(j.samples_per_sec).toFixed(0));
    cell(tr, j.last_eval && num(j.last_eval.step) > 0 ?
        (100 * num(j.last_eval.accuracy)).toFixed(2) + '%' : '–');
    const buttons = document.createElement('span');
    for (const a of ['pause', 'resume', 'cancel']) {
      const b = document.createElement('button');
      b.textContent = a;
      b.className = a;
      b.onclick = () => act(id, a);
      buttons.appendChild(b);
    }
    cell(tr, buttons);
    body.appendChild(tr);
  }
}

async function refresh() {
  const status = document.getElementById('status');
  try {
    const r = await fetch('/api/jobs', {cache: 'no-store'});
    if (r.status === 401) { location.href = '/'; return; }
    jobs = (await r.json()).jobs;
    status.textContent = jobs.length + ' jobs · ' + new Date().toLocaleTimeString();
    renderTable();
    if (!selected && jobs.length > 0) {
      const running = jobs.find((j) => j.state === 'JOB_STATE_RUNNING');
      select((running || jobs[jobs.length - 1]).job_id);
    }
  } catch (err) {
    status.textContent = 'server unreachable, retrying';
  }
}

refresh();
setInterval(refresh, 2000);
setInterval(render, 250);
