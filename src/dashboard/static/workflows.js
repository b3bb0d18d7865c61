// taskraft dashboard: the workflow pages. #/workflows lists them newest first; #/workflows/{id}
// draws the DAG (dag.js) and keeps its node states live, with a panel for the node picked
// (?node=ID in the URL): its tasks, why it was skipped or failed, and their results.
'use strict';

/** Rows the workflows page shows. */
const WF_ROWS = 100;
/** Tasks the node panel lists at most (a node may have 10,000 shards). */
const NODE_TASK_ROWS = 200;
/** Page size of the list requests (the API's maximum). */
const MAX_LIST = 1000;
/** Characters of a text result shown in the node panel. */
const RESULT_CHARS = 2000;
const NODE_STATES = ['waiting', 'running', 'succeeded', 'failed', 'skipped', 'cancelled'];
const WF_TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const ZOOMS = [0.1, 0.15, 0.25, 0.4, 0.5, 0.67, 0.8, 1, 1.25, 1.5];
/** A new drawing is shrunk to fit the width, down to this zoom (then it scrolls). */
const MIN_AUTO_ZOOM = 0.5;

// ---------------------------------------------------------------- workflows page

function workflowsPage(ctx) {
  const f = { before: /^\d+$/.test(ctx.params.get('before') || '') ? ctx.params.get('before') : '', top: null };
  const go = (before) => {
    f.before = before;
    history.replaceState(null, '', `${location.pathname}${location.search}#/workflows${before ? `?before=${before}` : ''}`);
    refreshNow();
  };
  const info = el('p', { id: 'workflows-info', class: 'muted small' });
  const t = table('workflows-table', ['id', 'name', 'state', 'nodes', 'created', 'took']);
  ctx.root.append(
    el('h1', {}, 'Workflows'),
    el('p', { class: 'muted small' }, 'Submit with `taskraft workflow submit FILE` or POST /v1/workflows. Click an id for its graph.'),
    el('div', { class: 'row filters' },
      el('button', { id: 'wf-newest', type: 'button', class: 'link', onclick: () => go('') }, 'newest'),
      el('button', { id: 'wf-older', type: 'button', class: 'link', onclick: () => { if (ctx.oldest) go(String(ctx.oldest)); } }, 'older ›')),
    info, t.table);
  return {
    async refresh(signal) {
      const { rows, note } = await fetchWorkflows(f, signal);
      ctx.oldest = rows.length ? rows[rows.length - 1].id : null;
      setText(info, note);
      syncRows(t.tbody, rows, (w) => w.id, () => el('tr', {}, cells(6)), (tr, w) => {
        const td = tr.children;
        tr.dataset.state = w.state;
        setChildren(td[0], [workflowLink(w.id)], String(w.id));
        setText(td[1], w.name || '—');
        setChildren(td[2], [badge(w.state)]);
        setChildren(td[3], nodeCounts(w.nodes), JSON.stringify(w.nodes));
        setText(td[4], fmtAgo(w.created_ms));
        setText(td[5], w.finished_ms ? fmtAge(w.finished_ms - w.created_ms) : fmtAge(Date.now() - w.created_ms));
      });
    },
  };
}

function workflowLink(id) {
  const n = Number(id);
  return el('a', { href: `#/workflows/${Number.isSafeInteger(n) ? n : ''}`, class: 'wf-link' }, `#${n}`);
}

/** Node counts per state, in life order, as badges with a number. */
function nodeCounts(counts) {
  const parts = NODE_STATES.filter((s) => counts[s]).map((s) => el('span', { class: 'count', 'data-state': s }, badge(s), ` ${counts[s]}`));
  return parts.length ? [el('span', { class: 'counts' }, parts)] : ['—'];
}

function listWorkflows(cursor, limit, signal) {
  return get(`/v1/workflows?${new URLSearchParams({ cursor: String(cursor), limit: String(limit) })}`, signal);
}

/**
 * The newest workflows (or those before `f.before`), newest first. The API lists in id order
 * after a cursor, so the page keeps the highest id it has seen (`f.top`) and reads the window
 * of ids just below it, plus any newer ones; the first time, when there is more than one page,
 * it finds the highest id by probing (a few one-row requests).
 */
async function fetchWorkflows(f, signal) {
  if (!f.before && f.top === null) {
    const first = await listWorkflows(0, MAX_LIST, signal);
    const all = first.workflows;
    f.top = all.length ? all[all.length - 1].id : 0;
    if (first.next_cursor === null || first.next_cursor === undefined) {
      const rows = all.slice().reverse().slice(0, WF_ROWS);
      return { rows, note: `${rows.length} of ${all.length} workflow(s), newest first.` };
    }
    const after = (x) => listWorkflows(x, 1, signal).then((p) => (p.workflows.length ? p.workflows[0].id : null));
    f.top = await newestWorkflowId(f.top, after);
  }
  const end = f.before ? Number(f.before) : Infinity; // exclusive
  let cursor = Math.max(0, (f.before ? Number(f.before) : f.top + 1) - 1 - WF_ROWS);
  const got = [];
  for (let i = 0; i < SCAN_REQUESTS; i++) {
    const page = await listWorkflows(cursor, MAX_LIST, signal);
    for (const w of page.workflows) if (w.id < end) got.push(w);
    const next = page.next_cursor;
    if (next === null || next === undefined || next >= end - 1 || page.workflows.length === 0) break;
    cursor = next;
  }
  if (!f.before) for (const w of got) f.top = Math.max(f.top, w.id);
  const rows = got.sort((a, b) => b.id - a.id).slice(0, WF_ROWS);
  return { rows, note: `${rows.length} workflow(s), ${f.before ? `before #${f.before}` : 'newest first'}.` };
}

/**
 * The highest workflow id, given one that exists and `after(x)`, which answers the smallest id
 * above x or null: doubling steps past `known`, then bisection. Ids only grow, though old ones
 * may be gone (retention), so any existing id above the bound moves it up.
 */
async function newestWorkflowId(known, after) {
  let lo = known; // exists
  let hi = null; // no id above
  let step = MAX_LIST;
  for (let i = 0; i < 53 && hi === null; i++) {
    const r = await after(lo + step);
    if (r === null) hi = lo + step;
    else [lo, step] = [r, step * 2];
  }
  for (let i = 0; i < 64 && hi !== null && lo < hi; i++) {
    const mid = Math.floor((lo + hi + 1) / 2); // lo < mid <= hi
    const r = await after(mid - 1); // the smallest id >= mid
    if (r === null) hi = mid - 1;
    else lo = r;
  }
  return lo;
}

// ---------------------------------------------------------------- workflow page

function workflowPage(ctx) {
  const id = Number(ctx.parts[1]);
  let dag = null; // the drawing (dag.js)
  let size = null; // its width and height at 100%
  let shape = null; // the workflow it was laid out for
  let last = null; // the last WorkflowView
  let selected = ctx.params.get('node');
  let force = true; // fetch on the next tick even if the slow-poll interval has not passed
  let nextAt = 0;
  const msg = messageLine('wf-msg');
  const summary = el('dl', { id: 'wf-summary', class: 'kv' });
  const kv = {};
  for (const [k, label] of [
    ['state', 'state'], ['name', 'name'], ['nodes', 'nodes'], ['origin', 'origin'], ['created', 'created'],
    ['finished', 'finished'], ['cancelnote', 'cancel'],
  ]) {
    kv[k] = el('dd', { id: `wf-${k}` });
    summary.append(el('dt', {}, label), kv[k]);
  }
  const reason = el('input', { id: 'wf-cancel-reason', placeholder: 'reason (optional)', size: 24 });
  const cancel = el('button', { id: 'wf-cancel', type: 'button', class: 'danger' }, 'Cancel workflow');
  cancel.addEventListener('click', async () => {
    if (!window.confirm(`Cancel workflow ${id}? Waiting nodes are cancelled and running tasks asked to stop.`)) return;
    cancel.disabled = true;
    try {
      const body = reason.value.trim() ? { reason: reason.value.trim() } : {};
      const w = await post(`/v1/workflows/${id}/cancel`, body);
      msg.ok(`Cancel sent: the workflow is ${w.state}.`);
    } catch (e) {
      msg.error(e);
      cancel.disabled = false;
    }
    force = true;
    refreshNow();
  });

  const graphNote = el('p', { id: 'wf-graph-note', class: 'muted small' });
  const wrap = el('div', { id: 'wf-graph', class: 'dag-wrap' }, el('p', { class: 'muted' }, 'loading…'));
  const zoomLabel = el('span', { id: 'wf-zoom', class: 'muted small' }, '100%');
  let zoom = ZOOMS.indexOf(1);
  /** The largest zoom at least ZOOMS[floor] that fits the width (and the height, if asked). */
  const fitting = (floor, height) => {
    if (!size) return zoom;
    // The frame is at most 75vh tall (app.css), less when the drawing is shorter.
    const room = Math.min(wrap.clientWidth / size.width, height ? (0.75 * window.innerHeight - 4) / size.height : Infinity);
    let z = floor;
    while (z + 1 < ZOOMS.length && ZOOMS[z + 1] <= Math.min(1, room)) z++;
    return z;
  };
  const setZoom = (z) => {
    zoom = Math.max(0, Math.min(ZOOMS.length - 1, z));
    setText(zoomLabel, `${Math.round(ZOOMS[zoom] * 100)}%`);
    if (dag) dag.zoom(ZOOMS[zoom]);
  };
  const toolbar = el('div', { class: 'row dag-tools' },
    el('button', { id: 'wf-zoom-out', type: 'button', class: 'link', title: 'zoom out', onclick: () => setZoom(zoom - 1) }, '−'),
    zoomLabel,
    el('button', { id: 'wf-zoom-in', type: 'button', class: 'link', title: 'zoom in', onclick: () => setZoom(zoom + 1) }, '+'),
    el('button', { id: 'wf-zoom-fit', type: 'button', class: 'link', title: 'the whole graph', onclick: () => setZoom(fitting(0, true)) }, 'fit'),
    legend());

  const panel = nodePanel((nodeId) => choose(nodeId));
  ctx.root.append(
    el('p', {}, el('a', { href: '#/workflows' }, '‹ all workflows')),
    el('h1', { id: 'wf-title' }, Number.isSafeInteger(id) ? `Workflow #${id}` : 'Workflow'),
    el('div', { class: 'row' }, reason, cancel),
    msg.node, summary,
    el('h2', {}, 'Graph'), toolbar, wrap, graphNote,
    panel.node,
  );

  function choose(nodeId) {
    selected = nodeId;
    const q = nodeId === null ? '' : `?${new URLSearchParams({ node: nodeId })}`;
    history.replaceState(null, '', `${location.pathname}${location.search}#/workflows/${Number.isSafeInteger(id) ? id : ''}${q}`);
    if (dag) dag.select(nodeId);
    if (last) panel.render(last, nodeId);
  }

  return {
    async refresh(signal) {
      if (!Number.isSafeInteger(id)) throw new ApiError(404, 'not_found', 'not a workflow id');
      // A big workflow's view is large: poll it at most every 4x what it takes to fetch and
      // draw, and a settled one every 5 s. A click or an action refreshes at once.
      if (!force && Date.now() < nextAt) return;
      force = false;
      const started = performance.now();
      const w = await get(`/v1/workflows/${id}`, signal);
      last = w;
      // Nodes and edges are fixed at submit: lay out once per workflow.
      const key = `${w.id}:${w.nodes.length}`;
      if (key !== shape) {
        const layout = layoutDag(w.nodes);
        dag = drawDag(layout, choose);
        shape = key;
        wrap.replaceChildren(dag.svg);
        size = { width: layout.width, height: layout.height };
        // Shrink a wide graph to fit (not below MIN_AUTO_ZOOM); columns are centred, so a tall
        // one opens scrolled to its middle, where every layer has boxes.
        setZoom(fitting(ZOOMS.indexOf(MIN_AUTO_ZOOM), false));
        wrap.scrollTop = Math.max(0, (wrap.scrollHeight - wrap.clientHeight) / 2);
        dag.select(selected);
        const edges = layout.edges.length;
        setText(graphNote, `${w.nodes.length} node(s) in ${layout.layers} layer(s), ${edges} edge(s), ${layout.crossings} crossing(s)` +
          `${layout.straight ? `; ${layout.straight} long edge(s) drawn straight across (too many to route)` : ''}.`);
      }
      dag.update(w.nodes);
      renderSummary(w);
      panel.render(w, selected);
      const settled = WF_TERMINAL.has(w.state) && w.nodes.every((n) => n.tasks.every((x) => TERMINAL.has(x.state)));
      const cost = performance.now() - started;
      nextAt = Date.now() + Math.max(settled ? 5 * POLL_MS : 0, 4 * cost) - POLL_MS / 2;
    },
  };

  function renderSummary(w) {
    setChildren(kv.state, [badge(w.state)]);
    kv.state.dataset.state = w.state;
    setText(kv.name, w.name || '—');
    const counts = {};
    for (const n of w.nodes) counts[n.state] = (counts[n.state] || 0) + 1;
    setChildren(kv.nodes, nodeCounts(counts), JSON.stringify(counts));
    const o = w.origin;
    if (o && typeof o === 'object' && typeof o.schedule === 'number') {
      setChildren(kv.origin, [`schedule ${o.schedule}`, ` · nominal ${fmtTime(o.nominal_ms)}${o.manual ? ' (manual trigger)' : ''}`], JSON.stringify(o));
    } else setChildren(kv.origin, ['api'], 'api');
    setText(kv.created, `${fmtTime(w.created_ms)} (${fmtAgo(w.created_ms)})`);
    setText(kv.finished, w.finished_ms ? `${fmtTime(w.finished_ms)} (took ${fmtAge(w.finished_ms - w.created_ms)})` : '—');
    setText(kv.cancelnote, w.cancel_reason ? `cancelled: ${w.cancel_reason}` : w.state === 'cancelled' ? 'cancelled' : '—');
    cancel.disabled = WF_TERMINAL.has(w.state);
  }
}

/** The edge styles, drawn as they appear in the graph. */
function legend() {
  const item = (kind, label) => {
    const s = svgEl('svg', { width: 34, height: 10, class: 'legend-edge', 'aria-hidden': 'true' });
    s.append(svgEl('path', { class: `edge on-${kind}`, d: 'M1,5 L33,5' }));
    return el('span', { class: 'legend-item' }, s, ` ${label}`);
  };
  return el('span', { id: 'wf-legend', class: 'legend small muted' },
    item('success', 'on success'), item('failure', 'on failure'), item('always', 'always'), item('not_failed', 'not failed'),
    el('span', { class: 'legend-item' }, el('span', { class: 'any-tag' }, 'any'), ' one parent edge is enough'),
    el('span', { class: 'legend-item' }, 'faded: condition not met'));
}

// ---------------------------------------------------------------- node panel

/** The panel of the node picked in the graph. `choose(id)` picks another (a parent, a child). */
function nodePanel(choose) {
  const title = el('h2', { id: 'wf-node-title' });
  const summary = el('dl', { id: 'wf-node-summary', class: 'kv' });
  const kv = {};
  for (const [k, label] of [
    ['state', 'state'], ['reason', 'why'], ['trigger', 'runs when'], ['parents', 'parents'], ['children', 'children'],
    ['shards', 'shards'], ['command', 'command'],
  ]) {
    kv[k] = el('dd', { id: `wf-node-${k}` });
    summary.append(el('dt', {}, label), kv[k]);
  }
  const filter = el('select', { id: 'wf-node-filter' }, el('option', { value: '' }, 'any state'), STATES.map((s) => el('option', { value: s }, s)));
  const note = el('p', { id: 'wf-node-tasks-note', class: 'muted small' });
  const tasks = table('wf-node-tasks', ['shard', 'task', 'state', 'result']);
  const close = el('button', { id: 'wf-node-close', type: 'button', class: 'link', onclick: () => choose(null) }, 'close');
  const node = el('section', { id: 'wf-node', class: 'card', hidden: true },
    el('div', { class: 'row' }, title, close), summary,
    el('div', { class: 'row' }, el('h2', {}, 'Tasks'), el('label', {}, 'State ', filter)), note, tasks.table);
  let shown = null;
  let view = null;
  filter.addEventListener('change', () => render(view, shown, true));
  const nodeLinks = (edges) => (edges.length
    ? edges.flatMap((e, i) => [i ? ', ' : '', el('button', { type: 'button', class: 'link wf-pick', 'data-node': e.node, onclick: () => choose(e.node) }, e.node),
      e.on && e.on !== 'success' ? ` (on ${e.on})` : ''])
    : ['—']);

  function render(w, id, force) {
    view = w;
    const n = id === null || id === undefined || !w ? null : w.nodes.find((x) => x.id === id);
    node.hidden = !n;
    if (!n) return;
    if (shown !== id || force) {
      shown = id;
      if (!force) filter.value = '';
    }
    setText(title, `Node ${n.id}`);
    node.dataset.node = n.id;
    setChildren(kv.state, [badge(n.state)]);
    kv.state.dataset.state = n.state;
    setText(kv.reason, n.reason || (n.state === 'waiting' ? 'its parents have not decided it yet' : '—'));
    setText(kv.trigger, n.depends.length ? (n.trigger === 'any' ? 'any parent edge is met' : 'every parent edge is met') : 'at once (a root)');
    setChildren(kv.parents, nodeLinks(n.depends), JSON.stringify(n.depends));
    const children = w.nodes.flatMap((c) => c.depends.filter((e) => e.node === n.id).map((e) => ({ node: c.id, on: e.on })));
    setChildren(kv.children, nodeLinks(children), JSON.stringify(children));
    const p = n.progress;
    if (n.shards) {
      const s = n.shards;
      const need = s.success && typeof s.success === 'object' ? `at least ${s.success.min} must succeed` : 'all must succeed';
      setText(kv.shards, `${s.count} (${need}${s.max_parallel ? `, at most ${s.max_parallel} at once` : ''}): ` +
        `${p.succeeded} succeeded, ${p.failed} failed, ${p.live} live, ${p.created} created`);
    } else setText(kv.shards, '— (one task)');
    setText(kv.command, fmtCommand(n.task));

    const want = filter.value;
    const matching = want ? n.tasks.filter((x) => x.state === want) : n.tasks;
    const rows = matching.slice(0, NODE_TASK_ROWS);
    const notCreated = p.total - n.tasks.length;
    setText(note, `${rows.length} of ${matching.length} task(s) shown${want ? ` in state ${want}` : ''}` +
      `${matching.length > rows.length ? ` (the first ${NODE_TASK_ROWS}; pick a state to narrow)` : ''}` +
      `${notCreated > 0 ? `; ${notCreated} not created yet` : ''}.`);
    syncRows(tasks.tbody, rows, (x) => x.task_id, () => el('tr', {}, cells(4)), (tr, x) => {
      const td = tr.children;
      tr.dataset.state = x.state;
      setText(td[0], x.shard === null || x.shard === undefined ? '—' : x.shard);
      setChildren(td[1], [taskLink(x.task_id)], String(x.task_id));
      setChildren(td[2], [badge(x.state)]);
      const r = x.result;
      const key = r ? `${r.size}:${r.text !== undefined && r.text !== null ? r.text.slice(0, RESULT_CHARS) : 'b'}` : '';
      setChildren(td[3], resultCell(r), key);
    });
  }
  return { node, render };
}

/** A task's result: its text (cut), or its size when binary; never markup. */
function resultCell(r) {
  if (!r) return ['—'];
  if (r.text === undefined || r.text === null) return [el('span', { class: 'muted result-binary' }, `${r.size} bytes, binary`)];
  const cut = r.text.length > RESULT_CHARS;
  return [el('pre', { class: 'output short result-text' }, cut ? `${r.text.slice(0, RESULT_CHARS)}…` : r.text),
    cut ? el('span', { class: 'muted small' }, `${r.size} bytes; see the task page for all of it`) : ''];
}
