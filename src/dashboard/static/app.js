// taskraft dashboard: plain ES2020, no framework, no build step, no external asset.
//
// How it works: the URL fragment names the page (#/cluster, #/workers, #/tasks,
// #/tasks/{id}, #/schedules, #/workflows, #/workflows/{id}). A page builds its skeleton once
// (forms, tables, buttons), then polls the API of the replica that served it about once a
// second and updates the DOM in place: table rows are keyed by id and only their changed
// cells are rewritten, so buttons and half-typed forms survive the refresh. Changing page
// aborts the page's requests.
//
// Every string that comes from the API (task names, commands, outputs, labels, errors)
// reaches the DOM through textContent or a text node, never as markup.
//
// This file: DOM helpers, formatting, the API client and the token prompt, routing and
// polling. The pages themselves are in pages.js, the workflow pages in workflows.js and their
// graph drawing in dag.js (all classic scripts sharing globals).
'use strict';

const POLL_MS = 1000;
const REQUEST_TIMEOUT_MS = 8000;
const TOKEN_KEY = 'taskraft.token';
/** Rows the tasks page shows. */
const TASK_ROWS = 100;
/** Ids the tasks page scans per request when it filters, and requests per refresh at most. */
const SCAN_WINDOW = 1000;
const SCAN_REQUESTS = 4;
/** A replica this many log entries behind the leader is shown as lagging. */
const LAG_WARN = 100;
const STATES = ['pending', 'blocked', 'assigned', 'running', 'retry_wait', 'succeeded', 'failed', 'cancelled'];
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const EXECUTORS = ['exec', 'sleep', 'noop', 'http'];

// ---------------------------------------------------------------- DOM helpers

/** Creates an element; string children become text nodes (never markup). */
function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = String(v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function setText(node, value) {
  const s = value === null || value === undefined ? '' : String(value);
  if (node.textContent !== s) node.textContent = s;
}

/** Replaces the children of `node` only when the text they would show changed. */
function setChildren(node, children, key) {
  const k = key === undefined ? children.map((c) => (c instanceof Node ? c.textContent : String(c))).join('\u0001') : key;
  if (node.dataset.k === k) return;
  node.dataset.k = k;
  node.replaceChildren(...children);
}

function setClass(node, cls) {
  if (node.className !== cls) node.className = cls;
}

/** A link to a page of this dashboard; only numeric ids reach the href. */
function taskLink(id) {
  const n = Number(id);
  return el('a', { href: `#/tasks/${Number.isSafeInteger(n) ? n : ''}`, class: 'task-link' }, `#${n}`);
}

function badge(state) {
  return el('span', { class: `badge s-${String(state).replace(/[^a-z_]/g, '')}` }, String(state));
}

/**
 * Keeps one <tr> per item in `tbody`, keyed by `keyOf`, in the order of `items`. New rows come
 * from `build(item)`, every row is passed to `update(tr, item)`; rows whose key vanished are
 * removed. Existing rows are moved, never recreated, so their buttons stay the same nodes.
 */
function syncRows(tbody, items, keyOf, build, update) {
  const old = new Map();
  for (const tr of Array.from(tbody.children)) old.set(tr.dataset.key, tr);
  let prev = null;
  for (const item of items) {
    const key = String(keyOf(item));
    let tr = old.get(key);
    if (tr) old.delete(key);
    else {
      tr = build(item);
      tr.dataset.key = key;
    }
    update(tr, item);
    const want = prev ? prev.nextSibling : tbody.firstChild;
    if (want !== tr) tbody.insertBefore(tr, want);
    prev = tr;
  }
  for (const tr of old.values()) tr.remove();
}

function table(id, headers) {
  const tbody = el('tbody');
  const t = el('table', { id, class: 'grid' }, el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))), tbody);
  return { table: t, tbody };
}

function cells(n) {
  return Array.from({ length: n }, () => el('td'));
}

/** A message line for action results: ok, or the API's error (403s included) inline. */
function messageLine(id) {
  const node = el('div', { id, class: 'msg', role: 'status' });
  return {
    node,
    ok(...parts) {
      node.className = 'msg ok';
      node.replaceChildren(...parts);
    },
    error(e) {
      node.className = 'msg err';
      node.replaceChildren(describe(e));
    },
    clear() {
      node.className = 'msg';
      node.replaceChildren();
    },
  };
}

function describe(e) {
  if (e instanceof ApiError) {
    if (e.status === 403) return `Forbidden: ${e.message}`;
    if (e.status === 0) return e.message;
    return `${e.status} ${e.code}: ${e.message}`;
  }
  return String(e && e.message ? e.message : e);
}

// ---------------------------------------------------------------- formatting

function fmtAge(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  const s = Math.max(0, ms) / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

function fmtTime(ms) {
  if (!ms) return '—';
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function fmtAgo(ms) {
  return ms ? `${fmtAge(Date.now() - ms)} ago` : '—';
}

function fmtDuration(task) {
  const a = task.attempts && task.attempts[task.attempts.length - 1];
  if (!a || !a.started_ms) return '—';
  return fmtAge((a.ended_ms || Date.now()) - a.started_ms);
}

function fmtLabels(map) {
  const entries = Object.entries(map || {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(', ') : '—';
}

function fmtCommand(spec) {
  const argv = (spec.command || []).map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
  return spec.executor && spec.executor !== 'exec' ? `${spec.executor}: ${argv}` : argv;
}

function scheduleOf(task) {
  const o = task.spec && task.spec.origin;
  return o && typeof o === 'object' && typeof o.schedule === 'number' ? o.schedule : null;
}

function workflowOf(task) {
  const o = task.spec && task.spec.origin;
  return o && typeof o === 'object' && Number.isSafeInteger(o.workflow) ? o.workflow : null;
}

// ---------------------------------------------------------------- API and auth

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || '';
  } catch (_) {
    return '';
  }
}

function setToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch (_) {
    /* private mode: the token lives for this page only */
  }
  memoryToken = token;
  renderAuthStatus();
}

let memoryToken = '';
const token = () => getToken() || memoryToken;

/** One JSON request to this replica; a 401 opens the token prompt. */
async function api(method, path, body, signal) {
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new DOMException('timeout', 'TimeoutError')), REQUEST_TIMEOUT_MS);
  const onAbort = () => ctl.abort(new DOMException('aborted', 'AbortError'));
  if (signal) {
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  }
  let resp;
  let text;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: ctl.signal,
      cache: 'no-store',
      credentials: 'omit',
    });
    text = await resp.text();
  } catch (e) {
    if (signal && signal.aborted) throw new DOMException('aborted', 'AbortError');
    const why = ctl.signal.aborted ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s` : e.message;
    throw new ApiError(0, 'unreachable', `cannot reach this replica (${why})`);
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener('abort', onAbort);
  }
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  if (!resp.ok) {
    const err = data && data.error ? data.error : { code: `http_${resp.status}`, message: (text || resp.statusText).slice(0, 300) };
    const e = new ApiError(resp.status, err.code || `http_${resp.status}`, err.message || '');
    if (resp.status === 401) askToken(e.message);
    throw e;
  }
  return data;
}

const get = (path, signal) => api('GET', path, undefined, signal);
const post = (path, body) => api('POST', path, body === undefined ? {} : body);

function askToken(reason) {
  const box = document.getElementById('login');
  const why = document.getElementById('login-reason');
  why.textContent = token()
    ? `The token was not accepted${reason ? `: ${reason}` : ''}. Enter another one.`
    : `This cluster requires a bearer token${reason ? ` (${reason})` : ''}.`;
  if (box.hidden) {
    box.hidden = false;
    const input = document.getElementById('token-input');
    input.value = '';
    input.focus();
  }
}

function loginOpen() {
  return !document.getElementById('login').hidden;
}

function renderAuthStatus() {
  const node = document.getElementById('auth-status');
  if (!node) return;
  if (!token()) {
    node.replaceChildren();
    return;
  }
  node.replaceChildren(
    el('span', { class: 'muted' }, 'token set '),
    el('button', {
      id: 'token-forget',
      class: 'link',
      type: 'button',
      onclick: () => {
        setToken('');
        refreshNow();
      },
    }, 'forget'),
  );
}

/** `#token=…` (or `&token=…` in a page's query) is taken once, stored, then removed from the URL. */
function takeTokenFromUrl() {
  const m = location.hash.match(/(?:^#|[?&])token=([^&]*)/);
  if (!m) return;
  setToken(decodeURIComponent(m[1]));
  let h = location.hash.replace(/([#?&])token=[^&]*&?/, '$1').replace(/[?&]$/, '');
  if (h === '#' || h === '') h = '#/cluster';
  history.replaceState(null, '', location.pathname + location.search + h);
}

// ---------------------------------------------------------------- routing and polling

let current = null;

function parseHash() {
  const h = location.hash.replace(/^#\/?/, '');
  const q = h.indexOf('?');
  const path = q < 0 ? h : h.slice(0, q);
  return { parts: path.split('/').filter(Boolean), params: new URLSearchParams(q < 0 ? '' : h.slice(q + 1)) };
}

function route() {
  if (current) {
    current.abort.abort();
    clearTimeout(current.timer);
  }
  const { parts, params } = parseHash();
  let name = parts[0] || 'cluster';
  let page = PAGES[name];
  if (name === 'tasks' && parts[1]) page = taskPage;
  if (name === 'workflows' && parts[1]) page = workflowPage;
  if (!page) {
    name = 'cluster';
    page = PAGES.cluster;
  }
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === name);
  const root = document.getElementById('page');
  root.replaceChildren();
  root.dataset.page = name;
  const ctx = { abort: new AbortController(), timer: null, root, parts, params, busy: false, again: false, view: null };
  current = ctx;
  ctx.view = page(ctx);
  poll(ctx);
}

async function poll(ctx) {
  if (ctx !== current) return;
  clearTimeout(ctx.timer);
  if (ctx.busy) {
    ctx.again = true;
    return;
  }
  if (!loginOpen() && !document.hidden) {
    ctx.busy = true;
    try {
      await ctx.view.refresh(ctx.abort.signal);
      if (ctx === current) live(true);
    } catch (e) {
      if (e && e.name === 'AbortError') return;
      if (ctx === current) live(false, e);
    } finally {
      ctx.busy = false;
    }
  }
  if (ctx !== current) return;
  if (ctx.again) {
    ctx.again = false;
    poll(ctx);
  } else {
    ctx.timer = setTimeout(() => poll(ctx), POLL_MS);
  }
}

/** Refreshes the current page now (after an action), without waiting for the next tick. */
function refreshNow() {
  if (current) poll(current);
}

function live(ok, e) {
  const node = document.getElementById('live');
  const banner = document.getElementById('banner');
  if (ok) {
    setText(node, `live · ${new Date().toLocaleTimeString()}`);
    setClass(node, 'live ok');
    banner.hidden = true;
  } else {
    setText(node, 'stale');
    setClass(node, 'live err');
    if (!(e instanceof ApiError && e.status === 401)) {
      setText(banner, describe(e));
      banner.hidden = false;
    }
  }
}

/** The header line: which replica answers, and its view of the leader. */
async function refreshVia() {
  if (loginOpen() || document.hidden) return;
  try {
    const c = await get('/v1/cluster');
    const leader = c.members.find((m) => m.id === c.leader_id);
    setText(
      document.getElementById('via'),
      `via replica ${c.node_id} (${c.role}) · leader ${c.leader_id === null ? 'unknown' : c.leader_id}` +
        `${leader ? ` at ${leader.api_addr}` : ''} · term ${c.term}`,
    );
  } catch (_) {
    /* the page shows the error */
  }
}

// ---------------------------------------------------------------- start

function start() {
  takeTokenFromUrl();
  renderAuthStatus();
  document.getElementById('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = document.getElementById('token-input').value.trim();
    if (!value) return;
    setToken(value);
    document.getElementById('login').hidden = true;
    refreshVia();
    refreshNow();
  });
  window.addEventListener('hashchange', () => {
    if (/(?:^#|[?&])token=/.test(location.hash)) takeTokenFromUrl();
    route();
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) refreshNow();
  });
  route();
  refreshVia();
  setInterval(refreshVia, 3 * POLL_MS);
}

// Both deferred scripts (this one and pages.js) have run before DOMContentLoaded.
document.addEventListener('DOMContentLoaded', start);
