// nnlab dashboard, sweeps: the sweeps list (polled), and for the chosen
// sweep an overlay of its trials (training loss, test accuracy, learning
// speed of a chosen layer; one curve per trial, named by what differs
// between the trials) above its ranked trial table. Curves come from
// /api/sweeps/<id>/curves (one request for all trials, so a large sweep
// does not need a stream per trial). Uses app.js's helpers.
'use strict';

let sweeps = [];      // [{sweep, labels}] from /api/sweeps.
let sweepView = null; // {id, layer, curves, charts, key, final, busy, again}

const sweepEnded = (s) => s.state === 'SWEEP_STATE_COMPLETED' || s.state === 'SWEEP_STATE_CANCELLED';

function sweepBest(s) {
  const best = (s.ranking || []).length > 0 ? s.trials[s.ranking[0]] : null;
  return best && best.has_metric ? num(best.best_metric).toFixed(4) + ' (trial ' + num(best.index) + ')' : '–';
}

function renderSweeps() {
  document.getElementById('sweeps-section').hidden = sweeps.length === 0;
  const body = document.querySelector('#sweeps tbody');
  body.textContent = '';
  for (const {sweep: s} of sweeps) {
    const tr = document.createElement('tr');
    tr.dataset.sweep = s.sweep_id;
    if (sweepView && sweepView.id === s.sweep_id) tr.className = 'selected';
    cell(tr, s.sweep_id, 'job').onclick = () => showSweep(s.sweep_id);
    cell(tr, s.spec.name || '');
    cell(tr, short(s.state));
    const ended = s.trials.filter((t) => /COMPLETED|CANCELLED|FAILED/.test(t.state)).length;
    cell(tr, ended + '/' + s.trials.length + ' ended');
    cell(tr, sweepBest(s));
    const b = document.createElement('button');
    b.textContent = 'overlay';
    b.className = 'overlay';
    b.onclick = () => showSweep(s.sweep_id);
    cell(tr, b);
    body.appendChild(tr);
  }
}

// The ranked trials, as `nnlab sweep get` prints them.
function renderTrials(entry) {
  const s = entry.sweep;
  const loss = s.spec.metric === 'SWEEP_METRIC_TEST_LOSS';
  document.getElementById('sweep-metric').textContent = loss ? 'test loss' : 'test acc.';
  const body = document.querySelector('#sweep-trials tbody');
  body.textContent = '';
  (s.ranking || []).forEach((i, rank) => {
    const t = s.trials[i];
    const tr = document.createElement('tr');
    tr.dataset.trial = i;
    cell(tr, String(rank + 1));
    cell(tr, String(num(t.index)));
    cell(tr, t.stopped_early ? 'stopped' : (t.job_id ? short(t.state) : 'pending'));
    cell(tr, t.has_metric ? num(t.best_metric).toFixed(4) : '–');
    cell(tr, t.has_metric ? String(num(t.best_step)) : '–');
    cell(tr, num(t.step) + '/' + num(t.total_steps));
    cell(tr, num(t.seconds).toFixed(1));
    cell(tr, entry.labels[i] || '');
    if (t.reason) tr.title = t.reason;
    body.appendChild(tr);
  });
}

// Aligned columns over the union of the trials' x values.
function aligned(trials, xname, yname) {
  const xs = [...new Set(trials.flatMap((t) => t[xname]))].sort((a, b) => a - b);
  return [xs].concat(trials.map((t) => {
    const at = new Map(t[xname].map((x, i) => [x, t[yname][i]]));
    return xs.map((x) => (at.has(x) ? at.get(x) : null));
  }));
}

function sweepChart(el, trials, data, log) {
  el.textContent = '';
  return new uPlot(Object.assign(size(el), {
    scales: {x: {time: false}, y: log ? {distr: 3} : {}},
    axes: [{label: 'step'}, log ? {values: (u, vals) => vals.map((v) => (v == null ? '' : v.toExponential(0)))} : {}],
    series: [{label: 'step'}].concat(trials.map((t, k) => ({
      label: t.label, stroke: COLORS[k % COLORS.length], spanGaps: true, points: {show: false}}))),
  }), data, el);
}

function drawSweep() {
  const v = sweepView;
  const c = v.curves;
  const select = document.getElementById('sweep-layer');
  if (select.dataset.layers !== c.layers.join()) {
    select.textContent = '';
    for (const name of c.layers) {
      const o = document.createElement('option');
      o.value = o.textContent = name;
      select.appendChild(o);
    }
    select.dataset.layers = c.layers.join();
  }
  select.value = c.layer;
  document.getElementById('sweep-speed').hidden = c.layers.length === 0;
  const data = [aligned(c.trials, 'step', 'train_loss'), aligned(c.trials, 'eval_step', 'test_acc'),
                aligned(c.trials, 'speed_step', 'speed').map((col, k) => (k === 0 ? col : col.map((y) => (y > 0 ? y : null))))];
  const key = c.layer + '|' + c.trials.map((t) => t.label).join('|');
  if (!v.charts || v.key !== key) {
    v.charts = [sweepChart(document.getElementById('chart-sweep-loss'), c.trials, data[0], false),
                sweepChart(document.getElementById('chart-sweep-acc'), c.trials, data[1], false),
                sweepChart(document.getElementById('chart-sweep-speed'), c.trials, data[2], true)];
    v.key = key;
  } else {
    v.charts.forEach((chart, k) => chart.setData(data[k]));
  }
}

async function fetchCurves() {
  const v = sweepView;
  if (!v) return;
  if (v.busy) {  // Once more when this one is done: it may predate a change.
    v.again = true;
    return;
  }
  v.busy = true;
  v.again = false;
  try {
    const r = await fetch('/api/sweeps/' + encodeURIComponent(v.id) + '/curves?layer=' +
                          encodeURIComponent(v.layer), {cache: 'no-store'});
    if (r.ok && sweepView === v) {
      v.curves = await r.json();
      v.layer = v.curves.layer;
      drawSweep();
    }
  } finally {
    v.busy = false;
  }
  if (v.again && sweepView === v) fetchCurves();
}

function updateSweepView() {
  const v = sweepView;
  if (!v) return;
  const entry = sweeps.find((e) => e.sweep.sweep_id === v.id);
  if (!entry) return;
  document.getElementById('sweep-state').textContent = short(entry.sweep.state);
  renderTrials(entry);
  // Curves while trials run, and once more after the sweep has ended.
  if (!v.final) {
    v.final = sweepEnded(entry.sweep);
    fetchCurves();
  }
}

function showSweep(id) {
  if (!sweepView || sweepView.id !== id) {
    sweepView = {id, layer: '', curves: null, charts: null, key: '', final: false, busy: false,
                 again: false};
  }
  const entry = sweeps.find((e) => e.sweep.sweep_id === id);
  document.getElementById('sweep').hidden = false;
  document.getElementById('sweep-title').textContent =
      id + (entry && entry.sweep.spec.name ? ' · ' + entry.sweep.spec.name : '');
  renderSweeps();
  updateSweepView();
}

async function refreshSweeps() {
  try {
    const r = await fetch('/api/sweeps', {cache: 'no-store'});
    if (!r.ok) return;
    sweeps = (await r.json()).sweeps;
    renderSweeps();
    updateSweepView();
  } catch (err) {
    // app.js's refresh reports an unreachable server.
  }
}

document.getElementById('sweep-layer').onchange = (e) => {
  if (!sweepView) return;
  sweepView.layer = e.target.value;
  sweepView.final = false;  // Fetch again, even for an ended sweep.
  updateSweepView();
};
refreshSweeps();
setInterval(refreshSweeps, 2000);
