/* app.js - the dashboard's pages: one small app over the JSON API under
 * /api/ (docs/dashboard.md), routed by the URL's #fragment. Every value
 * from the store goes into the page as text (textContent), never as HTML;
 * the graphs are Graphviz's SVG from the server. */
'use strict';

const main = document.getElementById('main');
let live = null; /* the open EventSource of a run's page */

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
}

async function api(path) {
  const r = await fetch(path);
  const type = r.headers.get('Content-Type') || '';
  const body = type.startsWith('application/json') ? await r.json() : await r.text();
  if (!r.ok) throw new Error((body && body.error) || r.statusText);
  return body;
}

function when(t) {
  if (!t) return '-';
  const d = new Date(t * 1000);
  return d.toLocaleString(undefined, { hour12: false });
}
function took(s) { return s === undefined || s === null ? '-' : s < 10 ? s.toFixed(2) + ' s' : s.toFixed(1) + ' s'; }
function stateBadge(s) { return el('span', { class: 'state s-' + s, text: s }); }
function short(hash) { return hash ? hash.slice(0, 12) : ''; }
function kv(pairs) {
  const dl = el('dl', { class: 'kv' });
  for (const [k, v] of pairs) dl.append(el('dt', { text: k }), el('dd', {}, v instanceof Node ? v : String(v)));
  return dl;
}
function json(v) { return JSON.stringify(v, null, 2); }
function page(title, ...kids) {
  main.replaceChildren(el('h1', { text: title }), ...kids);
  document.title = title + ' - sluice';
}
function fail(err) { main.append(el('p', { class: 'error', role: 'alert', text: 'Error: ' + err.message })); }
function params() {
  const q = location.hash.split('?')[1] || '';
  return new URLSearchParams(q);
}

/* ---- runs ---- */

async function runsPage() {
  const p = params();
  const form = el('form', { class: 'filters', 'aria-label': 'Filter runs' });
  const field = (name, label, input) => { input.name = name; input.value = p.get(name) || ''; return el('label', {}, label, input); };
  const status = el('select', {});
  for (const s of ['', 'running', 'done', 'failed', 'interrupted', 'crashed']) status.append(el('option', { value: s, text: s || 'any' }));
  form.append(field('pipeline', 'Pipeline', el('input', { size: 14 })), field('status', 'Status', status),
              field('tag', 'Tag (KEY=VALUE)', el('input', { size: 14 })), el('button', { type: 'submit', text: 'Filter' }));
  status.value = p.get('status') || '';
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const k of ['pipeline', 'status', 'tag']) if (form.elements[k].value) q.set(k, form.elements[k].value);
    location.hash = '#/runs' + (q.toString() ? '?' + q : '');
  });
  const body = el('tbody');
  const table = el('div', { class: 'scroll' }, el('table', { id: 'runs' },
    el('thead', {}, el('tr', {}, el('th', { text: 'Run' }), el('th', { text: 'Pipeline' }), el('th', { text: 'Status' }),
      el('th', { class: 'hide-narrow', text: 'Started' }), el('th', { text: 'Took' }), el('th', { class: 'hide-narrow', text: 'Tags' }))),
    body));
  const more = el('button', { type: 'button', text: 'Older runs', hidden: '' });
  page('Runs', form, table, more);
  const q = new URLSearchParams();
  for (const k of ['pipeline', 'status', 'tag']) if (p.get(k)) q.set(k, p.get(k));
  let cursor = null;
  async function load() {
    if (cursor) q.set('cursor', cursor);
    const data = await api('/api/runs?' + q);
    for (const r of data.runs) {
      const tags = Object.entries(r.tags || {}).map(([k, v]) => k + '=' + v).join(' ');
      body.append(el('tr', { 'data-run': r.run },
        el('td', {}, el('a', { href: '#/run/' + r.run, text: r.run })),
        el('td', { text: r.pipeline }), el('td', {}, stateBadge(r.status)),
        el('td', { class: 'hide-narrow', text: when(r.started) }), el('td', { text: took(r.took) }),
        el('td', { class: 'hide-narrow', text: tags })));
    }
    if (!body.children.length) body.append(el('tr', {}, el('td', { colspan: 6, text: 'No runs.' })));
    cursor = data.next;
    if (cursor) more.removeAttribute('hidden'); else more.setAttribute('hidden', '');
  }
  more.addEventListener('click', () => load().catch(fail));
  await load();
}

/* ---- a run ---- */

async function runPage(id, stepId, following) {
  const run = await api('/api/runs/' + encodeURIComponent(id));
  const graph = el('div', { class: 'graph', id: 'graph', role: 'img', 'aria-label': 'The DAG of run ' + run.run });
  const rows = el('tbody');
  for (const s of run.step_runs) {
    rows.append(el('tr', { 'data-step': s.step, 'data-state': s.state },
      el('td', {}, el('a', { href: '#/run/' + run.run + '/step/' + s.step, text: s.step })),
      el('td', {}, stateBadge(s.state)), el('td', { text: took(s.took) }),
      el('td', { class: 'hide-narrow', text: s.cache_reason || s.error || '' })));
  }
  const tags = Object.entries(run.tags || {}).map(([k, v]) => k + '=' + v).join(' ') || '-';
  const paramsText = Object.keys(run.params || {}).length ? json(run.params) : '-';
  const head = kv([['Pipeline', run.pipeline], ['Status', stateBadge(run.status)], ['Started', when(run.started)],
                   ['Took', took(run.finished && run.started ? run.finished - run.started : null)],
                   ['File', run.file || '-'], ['Tags', tags], ['Parameters', paramsText]]);
  const details = el('section', { id: 'step-details' });
  const charts = el('section', { id: 'charts' });
  page('Run ' + run.run, head, el('h2', { text: 'Steps' }), graph,
       el('div', { class: 'scroll' }, el('table', { id: 'steps' },
         el('thead', {}, el('tr', {}, el('th', { text: 'Step' }), el('th', { text: 'State' }), el('th', { text: 'Took' }),
           el('th', { class: 'hide-narrow', text: 'Why' }))), rows)),
       details, charts);
  graph.innerHTML = await api('/api/runs/' + encodeURIComponent(run.run) + '/graph.svg');
  if (stepId) await stepDetails(run, stepId, details);
  await runCharts(run, charts);
  if (run.status === 'running' && !following) follow(run.run, stepId);
}

/* Re-renders the run's page at each change of its state, until it ends. */
function follow(id, stepId) {
  const es = new EventSource('/api/runs/' + encodeURIComponent(id) + '/events');
  live = es;
  const refresh = () => { if (live === es || live === null) runPage(id, stepId, true).catch(fail); };
  es.addEventListener('state', refresh);
  es.addEventListener('end', () => {
    es.close();
    if (live === es) { live = null; refresh(); }
  });
}

async function stepDetails(run, stepId, box) {
  const s = run.step_runs.find((x) => x.step === stepId);
  if (!s) { box.append(el('p', { class: 'error', text: 'No step ' + stepId + ' in this run.' })); return; }
  const ports = (obj) => {
    const ul = el('ul');
    for (const [name, hash] of Object.entries(obj || {}))
      ul.append(el('li', {}, name + ': ', hash ? el('a', { href: '#/artifact/' + hash, text: short(hash) }) : 'none',
                   hash ? ' ' : null, hash ? el('a', { href: '#/lineage/' + hash, text: '(lineage)' }) : null));
    return ul.children.length ? ul : '-';
  };
  const metrics = Object.entries(s.metrics || {}).map(([k, v]) => k + ' = ' + v).join(', ') || '-';
  box.append(el('h2', { id: 'step-title', tabindex: '-1', text: 'Step ' + s.step }),
    kv([['State', stateBadge(s.state)], ['Uses', s.uses || '-'], ['Started', when(s.started)], ['Took', took(s.took)],
        ['Attempts', s.attempts === undefined ? '-' : s.attempts], ['Cache', s.cache_reason || '-'],
        ['Error', s.status === 'failed' ? (s.error || '-') : '-'], ['Inputs', ports(s.inputs)], ['Outputs', ports(s.outputs)],
        ['Metrics', metrics], ['Parameters', s.params ? el('pre', { text: json(s.params) }) : '-'],
        ['Job', s.job ? el('pre', { text: json(s.job) }) : '-']]));
  const log = el('pre', { id: 'log', text: 'loading the log...' });
  box.append(el('h2', { text: 'Log' }), log);
  try { log.textContent = await api('/api/runs/' + run.run + '/steps/' + encodeURIComponent(s.step) + '/log') || '(empty)'; }
  catch (e) { log.textContent = e.message; }
  document.getElementById('step-title').focus();
}

/* A chart per series (step and metric) of the run, with uPlot. */
async function runCharts(run, box) {
  const data = await api('/api/metrics?run=' + encodeURIComponent(run.run));
  const series = [];
  for (const st of data.steps) {
    const byKey = new Map();
    for (const p of st.points) {
      if (!byKey.has(p.key)) byKey.set(p.key, []);
      byKey.get(p.key).push(p);
    }
    for (const [key, pts] of byKey) series.push({ step: st.step, key, pts });
  }
  const multi = series.filter((s) => s.pts.length > 1);
  if (!multi.length) return;
  box.append(el('h2', { text: 'Metrics' }));
  for (const s of multi) chart(box, s.step + ': ' + s.key, s.pts.map((p) => p.index), s.pts.map((p) => p.value), 'step', s.key);
}

function chart(box, title, xs, ys, xlabel, ylabel, time) {
  const holder = el('figure', { class: 'chart', 'data-title': title, 'data-points': String(xs.length) },
                    el('figcaption', { text: title + ' (' + xs.length + ' points)' }));
  box.append(holder);
  if (typeof uPlot === 'undefined') {
    /* uPlot is not embedded ('npm ci' in orchestrator/ui was not run): the numbers, as a table. */
    const t = el('table', {}, el('tr', {}, el('th', { text: xlabel }), el('th', { text: ylabel })));
    xs.forEach((x, i) => t.append(el('tr', {}, el('td', { text: String(x) }), el('td', { text: String(ys[i]) }))));
    holder.append(t);
    return;
  }
  const width = Math.max(280, Math.min(900, box.clientWidth || 600));
  const u = new uPlot({ width, height: 240, scales: { x: { time: !!time } },
    series: [{ label: xlabel }, { label: ylabel, stroke: '#1f5fbf', width: 2, points: { show: xs.length < 60 } }],
    axes: [{ label: xlabel }, { label: ylabel }] }, [xs, ys], holder);
  holder.dataset.points = String(u.data[0].length);
}

/* ---- artifacts and lineage ---- */

async function artifactPage(id) {
  const a = await api('/api/artifacts/' + encodeURIComponent(id));
  const made = a.run ? el('a', { href: '#/run/' + a.run + '/step/' + a.step, text: a.run + ' / ' + a.step + '.' + a.output }) : 'imported';
  const parts = [kv([['Type', a.type], ['Kind', a.kind], ['Size', a.size + ' bytes'], ['Made by', made],
                     ['Created', when(a.created)], ['Lineage', el('a', { href: '#/lineage/' + a.artifact, text: 'up and down' })]])];
  if (a.kind !== 'folder') parts.push(el('p', {}, el('a', { href: '/api/artifacts/' + a.artifact + '?download', download: short(a.artifact), text: 'Download' })));
  parts.push(el('h2', { text: 'Preview (' + a.preview_kind + ')' }));
  if (a.preview_kind === 'jsonl') {
    const cols = [...new Set(a.rows.flatMap((r) => Object.keys(r)))].slice(0, 8);
    const t = el('table', {}, el('tr', {}, ...cols.map((c) => el('th', { text: c }))));
    for (const r of a.rows) t.append(el('tr', {}, ...cols.map((c) => el('td', { text: typeof r[c] === 'string' ? r[c].slice(0, 200) : JSON.stringify(r[c]) ?? '' }))));
    parts.push(el('div', { class: 'scroll' }, t));
  } else if (a.preview_kind === 'text' || a.preview_kind === 'json') {
    parts.push(el('pre', { text: a.text }));
  } else if (a.preview_kind === 'matrix') {
    parts.push(el('p', { text: 'A float32 matrix of ' + a.rows + ' rows and ' + a.cols + ' columns.' }));
  } else if (a.preview_kind === 'model' || a.preview_kind === 'folder') {
    if (a.config) parts.push(el('pre', { text: json(a.config) }));
    const ul = el('ul');
    for (const f of a.files || []) ul.append(el('li', { text: f.name + (f.folder ? '/' : ' (' + f.size + ' bytes)') }));
    parts.push(ul);
  } else {
    parts.push(el('p', { class: 'muted', text: 'No preview for this content.' }));
  }
  page('Artifact ' + short(a.artifact), ...parts);
}

async function lineagePage(id) {
  const l = await api('/api/lineage/' + encodeURIComponent(id));
  const graph = el('div', { class: 'graph', id: 'lineage-graph', role: 'img', 'aria-label': 'Lineage graph' });
  const list = el('ul', { id: 'lineage-nodes' });
  for (const n of l.nodes)
    list.append(el('li', { 'data-kind': n.kind }, el('a', { href: n.href, text: n.label.replace(/\n/g, ' ') })));
  page('Lineage of ' + short(l.artifact), graph, el('h2', { text: 'Artifacts and step runs' }), list,
       l.truncated ? el('p', { class: 'muted', text: 'The graph is cut at 200 nodes.' }) : '');
  graph.innerHTML = await api('/api/lineage/' + encodeURIComponent(l.artifact) + '/graph.svg');
}

/* ---- metrics across runs, models, traces, schedules ---- */

async function metricsPage() {
  const p = params();
  const name = p.get('name') || '';
  const form = el('form', { class: 'filters', 'aria-label': 'Metric' },
    el('label', {}, 'Metric', el('input', { name: 'name', value: name, size: 16 })),
    el('label', {}, 'Pipeline', el('input', { name: 'pipeline', value: p.get('pipeline') || '', size: 16 })),
    el('button', { type: 'submit', text: 'Show' }));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const k of ['name', 'pipeline']) if (form.elements[k].value) q.set(k, form.elements[k].value);
    location.hash = '#/metrics?' + q;
  });
  const box = el('section');
  page('Metrics across runs', form, box);
  if (!name) { box.append(el('p', { class: 'muted', text: 'Name a metric (loss, perplexity, recall@5...) to see it across runs.' })); return; }
  const q = new URLSearchParams({ name });
  if (p.get('pipeline')) q.set('pipeline', p.get('pipeline'));
  const data = await api('/api/metrics?' + q);
  if (!data.points.length) { box.append(el('p', { text: 'No run recorded ' + name + '.' })); return; }
  chart(box, name, data.points.map((x) => x.started), data.points.map((x) => x.value), 'run started', name, true);
  const t = el('table', {}, el('tr', {}, el('th', { text: 'Run' }), el('th', { text: 'Step' }), el('th', { text: name })));
  for (const x of data.points.slice().reverse())
    t.append(el('tr', {}, el('td', {}, el('a', { href: '#/run/' + x.run, text: x.run })), el('td', { text: x.step }), el('td', { text: String(x.value) })));
  box.append(el('div', { class: 'scroll' }, t));
}

async function modelsPage() {
  const data = await api('/api/models');
  const parts = [];
  if (!data.models.length) parts.push(el('p', { text: 'No model is registered.' }));
  for (const m of data.models) {
    const aliases = Object.entries(m.aliases).map(([a, v]) => a + ' → v' + v.version).join(', ') || 'none';
    const t = el('table', {}, el('tr', {}, el('th', { text: 'Version' }), el('th', { text: 'Artifact' }), el('th', { text: 'Run' }), el('th', { text: 'Metrics' })));
    for (const v of m.versions)
      t.append(el('tr', {}, el('td', { text: 'v' + v.version }), el('td', {}, el('a', { href: '#/artifact/' + v.artifact, text: short(v.artifact) })),
        el('td', {}, v.run ? el('a', { href: '#/run/' + v.run, text: v.run }) : '-'),
        el('td', { text: Object.entries(v.metrics || {}).map(([k, x]) => k + '=' + x).join(', ') || '-' })));
    const audit = el('ul');
    for (const e of m.audit) audit.append(el('li', { text: when(e.time) + ': ' + e.alias + ' → v' + e.version + (e.previous ? ' (was v' + e.previous + ')' : '') + ' by ' + (e.who || '?') + (e.reason ? ': ' + e.reason : '') }));
    parts.push(el('h2', { text: m.name }), el('p', { text: 'Aliases: ' + aliases }), el('div', { class: 'scroll' }, t),
               el('h3', { text: 'Promotions' }), audit.children.length ? audit : el('p', { class: 'muted', text: 'none' }));
  }
  page('Models', ...parts);
}

async function tracesPage() {
  const data = await api('/api/traces?limit=100');
  const parts = [];
  if (!data.traces.length) parts.push(el('p', { text: 'No traces: sluice serve records them in the store.' }));
  for (const t of data.traces) {
    const d = el('details', {}, el('summary', { text: (t.time ? when(t.time) + ' ' : '') + (t.route || '') + ' ' + (t.latency_ms !== undefined ? t.latency_ms + ' ms' : '') + ' ' + (t.id || '') }),
                  el('pre', { text: json(t) }));
    parts.push(d);
  }
  page('Traces', ...parts);
}

async function schedulesPage() {
  const data = await api('/api/schedules');
  const t = el('table', {}, el('tr', {}, el('th', { text: 'Name' }), el('th', { text: 'Pipeline file' }), el('th', { text: 'Trigger' }), el('th', { text: 'State' })));
  for (const s of data.schedules) {
    const trig = s.cron ? 'cron ' + s.cron : s.every ? 'every ' + s.every : s.at ? 'at ' + s.at : s.on ? 'on ' + s.on : JSON.stringify(s.trigger || '');
    t.append(el('tr', {}, el('td', { text: s.name }), el('td', { text: s.file || '-' }), el('td', { text: trig }),
                 el('td', { text: (s.paused ? 'paused' : 'active') + (s.state ? ', ' + JSON.stringify(s.state) : '') })));
  }
  page('Schedules', data.schedules.length ? el('div', { class: 'scroll' }, t) : el('p', { text: 'No schedules.' }));
}

/* ---- routing ---- */

async function route() {
  if (live) { live.close(); live = null; }
  const path = (location.hash.replace(/^#/, '').split('?')[0] || '/runs').split('/').filter(Boolean).map(decodeURIComponent);
  main.replaceChildren(el('p', { class: 'muted', text: 'Loading...' }));
  try {
    if (path[0] === 'run' && path[1]) await runPage(path[1], path[2] === 'step' ? path[3] : null);
    else if (path[0] === 'artifact' && path[1]) await artifactPage(path[1]);
    else if (path[0] === 'lineage' && path[1]) await lineagePage(path[1]);
    else if (path[0] === 'metrics') await metricsPage();
    else if (path[0] === 'models') await modelsPage();
    else if (path[0] === 'traces') await tracesPage();
    else if (path[0] === 'schedules') await schedulesPage();
    else await runsPage();
  } catch (e) {
    fail(e);
  }
  main.dataset.ready = location.hash || '#/runs';
}

window.addEventListener('hashchange', route);
route();
