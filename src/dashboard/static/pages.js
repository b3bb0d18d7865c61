// taskraft dashboard pages: one function per page, called by route() in app.js with the
// page's context. Each builds its skeleton once and returns { refresh(signal) }, which
// polls the API and updates the DOM in place (helpers in app.js).
'use strict';

// ---------------------------------------------------------------- cluster page

function clusterPage(ctx) {
  const summary = el('dl', { id: 'cluster-summary', class: 'kv' });
  const counts = el('div', { id: 'task-counts', class: 'counts' });
  const members = table('cluster-members', [
    'id', 'api', 'raft', 'kind', 'role', 'term', 'last log', 'committed', 'applied', 'lag', 'health', 'probe',
  ]);
  ctx.root.append(
    el('h1', {}, 'Cluster'),
    summary,
    el('h2', {}, 'Tasks'),
    counts,
    el('h2', {}, 'Replicas'),
    el('p', { class: 'muted small' }, 'Each replica is asked for its own status by the replica serving this page; lag is entries behind the leader\'s log.'),
    members.table,
  );
  const kv = {};
  for (const [k, label] of [
    ['node', 'answering replica'], ['leader', 'leader'], ['term', 'term'], ['indexes', 'commit / applied'],
    ['log', 'last log / snapshot / purged'], ['calendar', 'leader calendar'],
  ]) {
    kv[k] = el('dd', { id: `cluster-${k}` });
    summary.append(el('dt', {}, label), kv[k]);
  }
  return {
    async refresh(signal) {
      const [c, probes, stats] = await Promise.all([
        get('/v1/cluster', signal),
        get('/v1/dashboard/replicas', signal).catch((e) => {
          if (e.name === 'AbortError' || e.status === 401) throw e;
          return null;
        }),
        get('/v1/stats?consistency=stale', signal).catch((e) => {
          if (e.name === 'AbortError' || e.status === 401) throw e;
          return null;
        }),
      ]);
      const leader = c.members.find((m) => m.id === c.leader_id);
      setText(kv.node, `${c.node_id} (${c.role}, pid ${c.pid})`);
      setText(kv.leader, c.leader_id === null ? 'none known (election in progress?)' : `${c.leader_id}${leader ? ` at ${leader.api_addr}` : ''}`);
      setText(kv.term, c.term);
      setText(kv.indexes, `${c.committed ?? '—'} / ${c.last_applied ?? '—'}`);
      setText(kv.log, `${c.last_log_index ?? '—'} / ${c.snapshot ?? '—'} / ${c.purged ?? '—'}`);
      setText(kv.calendar, c.calendar
        ? `${c.calendar.fires_committed} fires, lateness p50 ${c.calendar.commit_lateness_ms.p50} ms, p99 ${c.calendar.commit_lateness_ms.p99} ms`
        : '— (shown on the leader)');
      if (stats) {
        setChildren(counts, [
          ...STATES.map((s) => el('span', { class: 'count', 'data-state': s }, badge(s), ` ${stats.counts[s] ?? 0}`)),
          el('span', { class: 'count muted' }, `total ${stats.total} · workers ${stats.active_workers}/${stats.workers} active`),
        ]);
      }
      renderMembers(members.tbody, c, probes);
    },
  };
}

function renderMembers(tbody, c, probes) {
  const byId = new Map(((probes && probes.replicas) || []).map((p) => [p.id, p]));
  const statusOf = (id) => (byId.get(id) || {}).status || (id === c.node_id ? c : null);
  const leaderStatus = c.leader_id !== null ? statusOf(c.leader_id) : null;
  const reachable = c.members.map((m) => statusOf(m.id)).filter(Boolean);
  const head = leaderStatus ? leaderStatus.last_log_index ?? 0 : Math.max(0, ...reachable.map((s) => s.last_log_index ?? 0));
  syncRows(tbody, c.members, (m) => m.id, () => el('tr', {}, cells(12)), (tr, m) => {
    const p = byId.get(m.id);
    const s = statusOf(m.id);
    const td = tr.children;
    tr.dataset.role = s ? s.role : 'unknown';
    setText(td[0], m.id === c.node_id ? `${m.id} (this)` : m.id);
    setChildren(td[1], [dashLink(m.api_addr)], m.api_addr);
    setText(td[2], m.raft_addr);
    setText(td[3], m.voter ? 'voter' : 'learner');
    setChildren(td[4], s ? [badge(s.role)] : ['—']);
    setText(td[5], s ? s.term : '—');
    setText(td[6], s ? s.last_log_index ?? '—' : '—');
    setText(td[7], s ? s.committed ?? '—' : '—');
    setText(td[8], s ? s.last_applied ?? '—' : '—');
    const lag = s ? Math.max(0, head - (s.last_applied ?? 0)) : null;
    setText(td[9], lag === null ? '—' : lag);
    let health;
    let cls;
    if (!probes) [health, cls] = [m.id === c.node_id ? 'ok (this replica)' : 'unknown', m.id === c.node_id ? 'ok' : 'warn'];
    else if (!s) [health, cls] = [`down: ${(p && p.error) || 'no answer'}`, 'bad'];
    else if (s.leader_id === null) [health, cls] = ['no leader known', 'warn'];
    else if (lag > LAG_WARN) [health, cls] = [`lagging ${lag} entries`, 'warn'];
    else [health, cls] = ['ok', 'ok'];
    setText(td[10], health);
    setClass(td[10], `health ${cls}`);
    td[10].title = health;
    setText(td[11], p && s ? `${p.latency_ms} ms` : '—');
  });
}

/** A link to the dashboard of another replica, built only from a host:port address. */
function dashLink(addr) {
  if (!/^[A-Za-z0-9.\-]+:\d+$|^\[[0-9A-Fa-f:]+\]:\d+$/.test(addr)) return el('span', {}, addr);
  return el('a', { href: `http://${addr}/`, title: 'this replica\'s dashboard' }, addr);
}

// ---------------------------------------------------------------- workers page

function workersPage(ctx) {
  const msg = messageLine('workers-msg');
  const t = table('workers-table', [
    'worker', 'state', 'host', 'slots', 'running', 'load', 'cpu / memory', 'labels', 'heartbeat', 'registered', '',
  ]);
  const note = el('p', { id: 'lease-note', class: 'muted small' });
  ctx.root.append(el('h1', {}, 'Workers'), msg.node, t.table, note);
  const act = async (what, id, fn) => {
    try {
      await fn();
      msg.ok(`${what} ${id}: done`);
    } catch (e) {
      msg.error(e);
    }
    refreshNow();
  };
  return {
    async refresh(signal) {
      const [list, leases] = await Promise.all([
        get('/v1/workers', signal),
        get('/v1/dashboard/leases', signal).catch((e) => {
          if (e.name === 'AbortError' || e.status === 401) throw e;
          return null;
        }),
      ]);
      const order = { active: 0, draining: 1, lost: 2, removed: 3 };
      const rows = list.workers.slice().sort((a, b) =>
        (order[a.worker.state] ?? 9) - (order[b.worker.state] ?? 9) || (a.worker.id < b.worker.id ? -1 : 1));
      setText(note, leases
        ? `Heartbeat ages as leader ${leases.leader_id} counts them; a worker silent for ${fmtAge(leases.ttl_ms)} is declared lost.`
        : 'Heartbeat ages unavailable (no leader answered).');
      syncRows(t.tbody, rows, (e) => e.worker.id, (e) => {
        const id = e.worker.id;
        const tds = cells(10);
        const drain = el('button', {
          class: 'worker-drain',
          type: 'button',
          onclick: () => act('drain', id, () => post(`/v1/workers/${encodeURIComponent(id)}/drain`)),
        }, 'Drain');
        const remove = el('button', {
          class: 'worker-remove danger',
          type: 'button',
          onclick: () => {
            if (!window.confirm(`Remove worker ${id}? Its running attempts end lost and are retried elsewhere.`)) return;
            act('remove', id, () => api('DELETE', `/v1/workers/${encodeURIComponent(id)}`));
          },
        }, 'Remove');
        return el('tr', {}, tds, el('td', { class: 'actions' }, drain, remove));
      }, (tr, e) => {
        const w = e.worker;
        const td = tr.children;
        tr.dataset.state = w.state;
        setText(td[0], w.id);
        setChildren(td[1], [badge(w.state)]);
        setText(td[2], `${w.host}${w.pid ? ` pid ${w.pid}` : ''}`);
        setText(td[3], w.slots);
        setText(td[4], e.running);
        const pct = w.slots ? Math.round((100 * e.running) / w.slots) : 0;
        setChildren(td[5], [el('span', { class: 'bar' }, el('span', { class: `fill w${Math.min(100, Math.round(pct / 10) * 10)}` })), ` ${pct}%`], String(pct));
        setText(td[6], `${w.cpu_millis} m / ${w.memory_mib} MiB`);
        setText(td[7], fmtLabels(w.labels));
        const age = leases ? leases.workers[w.id] : undefined;
        setText(td[8], age === undefined ? '—' : `${fmtAge(age)} ago`);
        setClass(td[8], age !== undefined && leases && age > leases.ttl_ms / 2 ? 'warn' : '');
        setText(td[9], fmtAgo(w.registered_ms));
        const [drain, remove] = td[10].children;
        drain.disabled = w.state !== 'active';
        remove.disabled = w.state === 'removed';
      });
    },
  };
}

// ---------------------------------------------------------------- tasks page

function tasksPage(ctx) {
  const f = {
    state: ctx.params.get('state') || '',
    name: ctx.params.get('name') || '',
    label: ctx.params.get('label') || '',
    schedule: ctx.params.get('schedule') || '',
    before: ctx.params.get('before') || '',
  };
  const submitMsg = messageLine('submit-msg');
  const input = (id, props) => el('input', { id, ...props });
  const executor = el('select', { id: 'submit-executor' }, EXECUTORS.map((x) => el('option', { value: x }, x)));
  const form = el('form', { id: 'submit-form', class: 'card', autocomplete: 'off' },
    el('h2', {}, 'Submit a task'),
    el('div', { class: 'row' },
      el('label', {}, 'Command ', input('submit-command', { required: true, size: 40, placeholder: 'echo hello   or   ["sh", "-c", "echo $HOME"]' })),
      el('label', {}, 'Executor ', executor),
      el('label', {}, 'Name ', input('submit-name', { size: 14 })),
      el('label', {}, 'Labels ', input('submit-labels', { size: 14, placeholder: 'gpu=1, zone=a' })),
      el('label', {}, 'Attempts ', input('submit-attempts', { type: 'number', min: 1, max: 100, size: 3 })),
      el('button', { id: 'submit-button', type: 'submit' }, 'Submit')),
    el('p', { class: 'muted small' }, 'The command is split on whitespace, or give a JSON array of strings. It runs without a shell. Executor sleep takes milliseconds, http a URL.'),
    submitMsg.node);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const button = document.getElementById('submit-button');
    let body;
    try {
      body = taskBody();
    } catch (e) {
      submitMsg.error(e);
      return;
    }
    button.disabled = true;
    try {
      const t = await api('POST', '/v1/tasks', body);
      submitMsg.ok('Submitted task ', taskLink(t.id), ` (${t.state}).`);
      document.getElementById('submit-command').value = '';
    } catch (e) {
      submitMsg.error(e);
    } finally {
      button.disabled = false;
    }
    refreshNow();
  });
  function taskBody() {
    const raw = document.getElementById('submit-command').value.trim();
    let command;
    if (raw.startsWith('[')) {
      command = JSON.parse(raw);
      if (!Array.isArray(command) || !command.every((a) => typeof a === 'string')) throw new Error('the command must be a JSON array of strings');
    } else command = raw ? raw.split(/\s+/) : [];
    const body = { command, executor: executor.value };
    const name = document.getElementById('submit-name').value.trim();
    if (name) body.name = name;
    const labels = document.getElementById('submit-labels').value.trim();
    if (labels) {
      body.labels = {};
      for (const pair of labels.split(/[,\s]+/).filter(Boolean)) {
        const i = pair.indexOf('=');
        if (i <= 0) throw new Error(`labels: "${pair}" is not key=value`);
        body.labels[pair.slice(0, i)] = pair.slice(i + 1);
      }
    }
    const attempts = document.getElementById('submit-attempts').value;
    if (attempts) body.max_attempts = Number(attempts);
    return body;
  }

  const stateSel = el('select', { id: 'filter-state' }, el('option', { value: '' }, 'any state'), STATES.map((s) => el('option', { value: s }, s)));
  stateSel.value = f.state;
  const filters = el('form', { id: 'task-filters', class: 'row filters', autocomplete: 'off' },
    el('label', {}, 'State ', stateSel),
    el('label', {}, 'Name ', input('filter-name', { value: f.name, size: 14, placeholder: 'contains…' })),
    el('label', {}, 'Label ', input('filter-label', { value: f.label, size: 14, placeholder: 'key or key=value' })),
    el('label', {}, 'Schedule ', input('filter-schedule', { value: f.schedule, size: 5, placeholder: 'id' })),
    el('button', { id: 'filter-newest', type: 'button', class: 'link', onclick: () => { f.before = ''; applyFilters(); } }, 'newest'),
    el('button', { id: 'filter-older', type: 'button', class: 'link', onclick: () => { if (ctx.oldest) { f.before = String(ctx.oldest); applyFilters(); } } }, 'older ›'));
  const applyFilters = () => {
    if (ctx !== current) return; // a debounced edit that outlived its page
    f.state = stateSel.value;
    f.name = document.getElementById('filter-name').value.trim();
    f.label = document.getElementById('filter-label').value.trim();
    f.schedule = document.getElementById('filter-schedule').value.trim();
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
    const qs = q.toString();
    // replaceState does not fire hashchange: the page (and its forms) stays, the URL is shareable.
    history.replaceState(null, '', `${location.pathname}${location.search}#/tasks${qs ? `?${qs}` : ''}`);
    refreshNow();
  };
  let debounce = null;
  const later = () => {
    clearTimeout(debounce);
    debounce = setTimeout(applyFilters, 250);
  };
  filters.addEventListener('input', later);
  filters.addEventListener('change', later);
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    applyFilters();
  });

  const t = table('tasks-table', ['id', 'name', 'state', 'command', 'worker', 'attempts', 'created', 'ran for', 'labels', 'origin']);
  const info = el('p', { id: 'tasks-info', class: 'muted small' });
  ctx.root.append(el('h1', {}, 'Tasks'), form, filters, info, t.table);

  return {
    async refresh(signal) {
      const { tasks, note } = await fetchTasks(f, signal);
      ctx.oldest = tasks.length ? tasks[tasks.length - 1].id : null;
      setText(info, note);
      syncRows(t.tbody, tasks, (x) => x.id, () => el('tr', {}, cells(10)), (tr, x) => {
        const td = tr.children;
        tr.dataset.state = x.state;
        setChildren(td[0], [taskLink(x.id)], String(x.id));
        setText(td[1], x.spec.name || '');
        setChildren(td[2], [badge(x.state), x.cancel_requested && !TERMINAL.has(x.state) ? ' (cancelling)' : '']);
        setText(td[3], fmtCommand(x.spec));
        const a = x.attempts[x.attempts.length - 1];
        setText(td[4], a ? a.worker_id : '—');
        setText(td[5], x.attempts.length);
        setText(td[6], fmtAgo(x.created_ms));
        setText(td[7], fmtDuration(x));
        setText(td[8], fmtLabels(x.spec.constraints));
        setChildren(td[9], [originLink(x)], JSON.stringify(x.spec.origin));
      });
    },
  };
}

/** Where a task came from: `api`, or a link to its schedule's runs or to its workflow. */
function originLink(task) {
  const sched = scheduleOf(task);
  if (sched !== null) return el('a', { href: `#/tasks?schedule=${sched}` }, `schedule ${sched}`);
  const wf = workflowOf(task);
  if (wf !== null) return el('a', { href: `#/workflows/${wf}`, class: 'wf-link' }, `workflow ${wf}`);
  return 'api';
}

function matchesClientFilters(task, f) {
  if (f.name && !(task.spec.name || '').toLowerCase().includes(f.name.toLowerCase())) return false;
  if (f.label) {
    const i = f.label.indexOf('=');
    const c = task.spec.constraints || {};
    if (i < 0 ? !(f.label in c) : c[f.label.slice(0, i)] !== f.label.slice(i + 1)) return false;
  }
  if (f.state && task.state !== f.state) return false;
  return true;
}

/**
 * The newest tasks matching the filters, newest first. The API lists in id order after a
 * cursor and filters by state and schedule only; name and label are filtered here, in the
 * browser, over windows of ids scanned backwards from the newest task.
 */
async function fetchTasks(f, signal) {
  const clientSide = f.name || f.label ? ' (name and label are filtered in the browser)' : '';
  if (f.schedule) {
    if (!/^\d+$/.test(f.schedule)) throw new ApiError(422, 'invalid_field', 'schedule: must be a schedule id');
    // Runs come in nominal order; state cannot be combined server-side with a schedule.
    let cursor = null;
    let runs = [];
    for (let i = 0; i < SCAN_REQUESTS; i++) {
      const q = new URLSearchParams({ schedule: f.schedule, limit: String(SCAN_WINDOW) });
      if (cursor !== null) q.set('cursor', String(cursor));
      const page = await get(`/v1/tasks?${q}`, signal);
      runs = runs.concat(page.tasks);
      cursor = page.next_cursor;
      if (cursor === null || cursor === undefined) break;
    }
    const tasks = runs.filter((x) => matchesClientFilters(x, f)).sort((a, b) => b.id - a.id).slice(0, TASK_ROWS);
    return { tasks, note: `Runs of schedule ${f.schedule}: ${tasks.length} shown of ${runs.length} read${cursor ? ' (the first pages only)' : ''}${clientSide}.` };
  }
  const stats = await get('/v1/stats', signal);
  const end = f.before ? Math.min(Number(f.before), stats.next_task_id) : stats.next_task_id;
  const found = [];
  let hi = end; // exclusive
  let requests = 0;
  const filtered = f.state || f.name || f.label;
  const window = filtered ? SCAN_WINDOW : TASK_ROWS;
  while (hi > 1 && found.length < TASK_ROWS && requests < SCAN_REQUESTS) {
    const lo = Math.max(0, hi - 1 - window); // the API's cursor is exclusive
    let cursor = lo;
    const inWindow = [];
    while (requests < SCAN_REQUESTS) {
      const q = new URLSearchParams({ cursor: String(cursor), limit: String(window) });
      if (f.state) q.set('state', f.state);
      const page = await get(`/v1/tasks?${q}`, signal);
      requests++;
      for (const x of page.tasks) if (x.id < hi) inWindow.push(x);
      const next = page.next_cursor;
      if (next === null || next === undefined || next >= hi - 1 || page.tasks.length === 0) break;
      cursor = next;
    }
    found.push(...inWindow.filter((x) => matchesClientFilters(x, f)).sort((a, b) => b.id - a.id));
    hi = lo + 1;
  }
  const tasks = found.slice(0, TASK_ROWS);
  const scanned = end - hi;
  const range = f.before ? `before #${end}` : 'newest';
  return { tasks, note: `${tasks.length} task(s) shown, ${range}; ${scanned} id(s) scanned of ${stats.total}${clientSide}.` };
}

// ---------------------------------------------------------------- task detail page

function taskPage(ctx) {
  const id = Number(ctx.parts[1]);
  const msg = messageLine('task-msg');
  const summary = el('dl', { id: 'task-summary', class: 'kv' });
  const kv = {};
  const field = (k, label) => {
    kv[k] = el('dd', { id: `task-${k}` });
    summary.append(el('dt', {}, label), kv[k]);
  };
  for (const [k, label] of [
    ['state', 'state'], ['name', 'name'], ['command', 'command'], ['pending', 'why pending'], ['worker', 'current attempt'],
    ['labels', 'requires labels'], ['priority', 'priority'], ['retry', 'retry'], ['timeout', 'timeout'], ['origin', 'origin'],
    ['depends', 'depends on'], ['created', 'created'], ['finished', 'finished'], ['error', 'last error'], ['cancelnote', 'cancel'],
  ]) field(k, label);
  const reason = el('input', { id: 'cancel-reason', placeholder: 'reason (optional)', size: 24 });
  const cancel = el('button', { id: 'task-cancel', type: 'button', class: 'danger' }, 'Cancel task');
  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    try {
      const body = reason.value.trim() ? { reason: reason.value.trim() } : {};
      const t = await post(`/v1/tasks/${id}/cancel`, body);
      msg.ok(`Cancel sent: task is ${t.state}${t.cancel_requested && !TERMINAL.has(t.state) ? ', its worker was asked to stop it' : ''}.`);
    } catch (e) {
      msg.error(e);
      cancel.disabled = false;
    }
    refreshNow();
  });
  const checkpoint = el('div', { id: 'task-checkpoint' });
  const result = el('div', { id: 'task-result' });
  const attempts = table('task-attempts', ['#', 'worker', 'token', 'assigned', 'started', 'ended', 'outcome', 'exit', 'error', '']);
  const outputTitle = el('h2', { id: 'task-output-title' }, 'Output');
  const output = el('pre', { id: 'task-output', class: 'output' });
  ctx.root.append(
    el('p', {}, el('a', { href: '#/tasks' }, '‹ all tasks')),
    el('h1', { id: 'task-title' }, Number.isSafeInteger(id) ? `Task #${id}` : 'Task'),
    el('div', { class: 'row' }, reason, cancel),
    msg.node, summary,
    el('h2', {}, 'Result'), result,
    el('h2', {}, 'Checkpoint'), checkpoint,
    el('h2', {}, 'Attempts'), attempts.table,
    outputTitle, output,
  );
  let shown = null; // attempt number whose output is shown; null: the latest
  return {
    async refresh(signal) {
      if (!Number.isSafeInteger(id)) throw new ApiError(404, 'not_found', 'not a task id');
      const t = await get(`/v1/tasks/${id}`, signal);
      const s = t.spec;
      setChildren(kv.state, [badge(t.state), t.cancel_requested && !TERMINAL.has(t.state) ? ' (cancel requested)' : '']);
      kv.state.dataset.state = t.state;
      setText(kv.name, s.name || '—');
      setText(kv.command, fmtCommand(s));
      setText(kv.pending, t.pending_reason || (t.state === 'pending' ? '(no reason given)' : '—'));
      const a = t.attempts[t.attempts.length - 1];
      setText(kv.worker, a ? `attempt ${a.number} on ${a.worker_id}${a.outcome ? ` (${a.outcome})` : ' (live)'}` : '—');
      setText(kv.labels, fmtLabels(s.constraints) + (s.prefer && s.prefer.labels ? ` · prefers ${fmtLabels(s.prefer.labels)}` : ''));
      setText(kv.priority, `${s.priority} (${s.placement})`);
      setText(kv.retry, `${t.attempts.length} of ${s.retry.max_attempts} attempt(s)${t.retry_at_ms ? ` · next at ${fmtTime(t.retry_at_ms)}` : ''} · failover ${s.failover}`);
      setText(kv.timeout, s.timeout_ms ? fmtAge(s.timeout_ms) : 'none');
      const origin = [originLink(t)];
      if (scheduleOf(t) !== null) origin.push(` · nominal ${fmtTime(s.origin.nominal_ms)}${s.origin.manual ? ' (manual trigger)' : ''}`);
      else if (workflowOf(t) !== null) origin.push(` · node #${Number(s.origin.node)}${s.shard ? ` · shard ${s.shard.index} of ${s.shard.total}` : ''}`);
      setChildren(kv.origin, origin, JSON.stringify(s.origin));
      setChildren(kv.depends, s.depends_on.length ? s.depends_on.flatMap((d, i) => (i ? [', ', taskLink(d)] : [taskLink(d)])) : ['—'], s.depends_on.join(','));
      setText(kv.created, `${fmtTime(t.created_ms)} (${fmtAgo(t.created_ms)})`);
      setText(kv.finished, t.finished_ms ? `${fmtTime(t.finished_ms)} (${fmtAgo(t.finished_ms)})` : '—');
      setText(kv.error, t.last_error || '—');
      setText(kv.cancelnote, t.cancel_requested || t.cancel_reason ? `requested${t.cancel_reason ? `: ${t.cancel_reason}` : ''}` : '—');
      cancel.disabled = TERMINAL.has(t.state);
      const c = t.checkpoint;
      setChildren(checkpoint, c
        ? [el('p', { class: 'muted small' }, `${c.size} byte(s) from attempt ${c.attempt} at ${fmtTime(c.at_ms)}${c.base64 ? ', binary (base64)' : ''}`),
          el('pre', { class: 'output short' }, c.text !== undefined && c.text !== null ? c.text : c.base64 || '')]
        : [el('p', { class: 'muted' }, 'none')], c ? JSON.stringify(c) : '');
      // Same JSON form as the checkpoint: text when UTF-8, else base64.
      const r = t.result;
      setChildren(result, r
        ? [el('p', { class: 'muted small' }, `${r.size} byte(s) from attempt ${r.attempt} at ${fmtTime(r.at_ms)}${r.base64 ? ', binary (base64)' : ''}`),
          el('pre', { class: 'output short' }, r.text !== undefined && r.text !== null ? r.text : r.base64 || '')]
        : [el('p', { class: 'muted' }, 'none')], r ? JSON.stringify(r) : '');
      syncRows(attempts.tbody, t.attempts.slice().reverse(), (x) => x.number, (x) => {
        const show = el('button', { type: 'button', class: 'link', onclick: () => { shown = x.number; refreshNow(); } }, 'output');
        return el('tr', {}, cells(9), el('td', {}, show));
      }, (tr, x) => {
        const td = tr.children;
        setText(td[0], x.number);
        setText(td[1], x.worker_id);
        setText(td[2], x.fencing_token);
        setText(td[3], fmtTime(x.assigned_ms));
        setText(td[4], fmtTime(x.started_ms));
        setText(td[5], fmtTime(x.ended_ms));
        setChildren(td[6], [x.outcome ? badge(x.outcome) : badge('live')]);
        setText(td[7], x.exit_code ?? '—');
        setText(td[8], x.error || '');
        tr.classList.toggle('selected', x.number === (shown ?? (a && a.number)));
      });
      const pick = t.attempts.find((x) => x.number === shown) || a;
      setText(outputTitle, pick ? `Output of attempt ${pick.number} (tail)` : 'Output');
      setText(output, pick ? pick.output_tail || (pick.outcome ? '(no output)' : '(no output yet)') : '(not started)');
    },
  };
}

// ---------------------------------------------------------------- schedules page

function schedulesPage(ctx) {
  const msg = messageLine('schedules-msg');
  const t = table('schedules-table', ['id', 'name', 'when', 'state', 'next fires', 'last fire', 'counters', 'runs', 'live runs', '']);
  ctx.root.append(el('h1', {}, 'Schedules'), msg.node, t.table,
    el('p', { class: 'muted small' }, 'Create schedules with `taskraft schedule create` or POST /v1/schedules. Next fires are shown in each schedule\'s own time zone.'));
  const act = async (what, s, path) => {
    try {
      const r = await post(path);
      if (r && r.started) msg.ok(`${what} schedule ${s.id}: started `, ...r.started.flatMap((id, i) => (i ? [', ', taskLink(id)] : [taskLink(id)])));
      else msg.ok(`${what} schedule ${s.id}: done`);
    } catch (e) {
      msg.error(e);
    }
    refreshNow();
  };
  return {
    async refresh(signal) {
      const list = await get('/v1/schedules', signal);
      syncRows(t.tbody, list.schedules, (s) => s.id, (s) => {
        const byId = () => ({ id: s.id });
        const button = (cls, label, what, verb) => el('button', {
          class: cls, type: 'button', onclick: () => act(what, byId(), `/v1/schedules/${Number(s.id)}/${verb}`),
        }, label);
        return el('tr', {}, cells(9), el('td', { class: 'actions' },
          button('sched-pause', 'Pause', 'paused', 'pause'),
          button('sched-resume', 'Resume', 'resumed', 'resume'),
          button('sched-trigger', 'Trigger', 'triggered', 'trigger')));
      }, (tr, s) => {
        const td = tr.children;
        tr.dataset.paused = String(s.paused);
        setText(td[0], s.id);
        setText(td[1], s.name || '—');
        const when = s.cron !== undefined ? `cron ${s.cron} ${s.time_zone}` : s.every_ms !== undefined ? `every ${fmtAge(s.every_ms)}` : `once at ${fmtTime(s.at_ms)}`;
        setText(td[2], when);
        setChildren(td[3], [badge(s.paused ? 'paused' : 'active'), s.paused && s.pause_note ? ` ${s.pause_note}` : ''], `${s.paused}${s.pause_note || ''}`);
        setText(td[4], s.next_fires.length ? s.next_fires.slice(0, 3).map((x) => x.local).join('\n') : '—');
        setText(td[5], s.last_nominal || '—');
        const c = s.counters;
        setText(td[6], Object.entries(c).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(', ') || '—');
        setChildren(td[7], [el('a', { href: `#/tasks?schedule=${Number(s.id)}` }, String(s.runs))], String(s.runs));
        setChildren(td[8], s.live_runs.length ? s.live_runs.flatMap((id, i) => (i ? [' ', taskLink(id)] : [taskLink(id)])) : ['—'], s.live_runs.join(','));
        const [pause, resume] = td[9].children;
        pause.disabled = s.paused;
        resume.disabled = !s.paused;
      });
    },
  };
}

// workflows.js (the workflow pages) is loaded before this file.
const PAGES = { cluster: clusterPage, workers: workersPage, tasks: tasksPage, schedules: schedulesPage, workflows: workflowsPage };

