// taskraft dashboard: a workflow's DAG, laid out here and drawn as inline SVG.
//
// Layout (layoutDag, pure: nodes in, coordinates out) is the classic layered drawing:
// 1. Layers by longest path from the roots (a node sits one layer right of its deepest
//    parent), found in one topological pass.
// 2. An edge spanning several layers is cut into segments through invisible "dummy" points,
//    one per layer it crosses, so that it takes part in ordering and bends around boxes. The
//    number of dummies is capped: past the cap, long edges are drawn straight across.
// 3. Nodes are ordered within each layer to reduce crossings: barycenter sweeps, left to right
//    then right to left, each layer sorted by the mean position of its neighbours in the layer
//    just swept. Crossings are counted after each sweep (inversions, O(E log E)) and the best
//    order seen is kept.
// 4. Coordinates: a layer is a column; its boxes are stacked and centred vertically.
//
// The structure of a workflow never changes after it is submitted, so the layout and the SVG
// are built once per workflow; a refresh (updateDag) only changes classes and texts of the
// node boxes and edges already drawn: no re-layout, no flicker.
//
// Every string reaches the SVG through textContent or setAttribute, never as markup.
'use strict';

const DAG = {
  NODE_W: 180,
  NODE_H: 46,
  LAYER_GAP: 64,
  ROW_GAP: 14,
  DUMMY_H: 8,
  PAD: 16,
  /** Most dummy points; past this, long edges are drawn straight across layers. */
  MAX_DUMMIES: 10000,
  /** Ordering sweeps (alternating direction); stops early at zero crossings. */
  SWEEPS: 8,
  /** Characters of a node id shown in its box (the full id is in its tooltip and panel). */
  ID_CHARS: 22,
};
const SVG_NS = 'http://www.w3.org/2000/svg';
const EDGE_KINDS = ['success', 'failure', 'always', 'not_failed'];

/**
 * Lays out `nodes` ([{ id, depends: [{ node, on }] }], edges to unknown ids ignored). Returns
 * { width, height, nodes: [{ id, index, layer, x, y }], edges: [{ from, to, on, d }], layers,
 * crossings, straight } where `d` is an SVG path and `straight` counts long edges drawn
 * without dummies (over the cap).
 */
function layoutDag(nodes) {
  const n = nodes.length;
  const index = new Map(nodes.map((x, i) => [x.id, i]));
  const edges = [];
  for (let c = 0; c < n; c++) {
    for (const e of nodes[c].depends || []) {
      const p = index.get(e.node);
      if (p !== undefined && p !== c) edges.push({ p, c, on: e.on || 'success' });
    }
  }
  const layer = longestPathLayers(n, edges);
  const depth = n ? Math.max(...layer) + 1 : 0;

  // Items: the real nodes first (item i is node i), then dummies. Segments join items of
  // adjacent layers; each edge keeps its chain of items for drawing.
  const itemLayer = layer.slice();
  const up = Array.from({ length: n }, () => []);
  const down = Array.from({ length: n }, () => []);
  const segments = [];
  const link = (a, b) => {
    down[a].push(b);
    up[b].push(a);
    segments.push([a, b, itemLayer[a]]);
  };
  let dummies = 0;
  let straight = 0;
  for (const e of edges) {
    const span = layer[e.c] - layer[e.p];
    e.chain = [e.p];
    if (span > 1 && dummies + span - 1 <= DAG.MAX_DUMMIES) {
      let prev = e.p;
      for (let l = layer[e.p] + 1; l < layer[e.c]; l++) {
        const d = itemLayer.length;
        itemLayer.push(l);
        up.push([]);
        down.push([]);
        link(prev, d);
        e.chain.push(d);
        prev = d;
        dummies++;
      }
      link(prev, e.c);
    } else if (span === 1) {
      link(e.p, e.c);
    } else {
      straight++; // drawn straight, left out of ordering
    }
    e.chain.push(e.c);
  }

  // Initial order: submitted order for nodes; a dummy follows the order its edge was met.
  const layers = Array.from({ length: depth }, () => []);
  for (let i = 0; i < itemLayer.length; i++) layers[itemLayer[i]].push(i);
  const pos = new Float64Array(itemLayer.length);
  const place = () => {
    for (const row of layers) row.forEach((it, k) => { pos[it] = k; });
  };
  place();
  const key = new Float64Array(itemLayer.length);
  let best = layers.map((row) => row.slice());
  let bestCrossings = countCrossings(segments, pos);
  for (let sweep = 0; sweep < DAG.SWEEPS && bestCrossings > 0; sweep++) {
    const forward = sweep % 2 === 0;
    for (let k = 1; k < depth; k++) {
      const l = forward ? k : depth - 1 - k;
      const nbrs = forward ? up : down;
      for (const it of layers[l]) {
        const ns = nbrs[it];
        key[it] = ns.length ? ns.reduce((s, v) => s + pos[v], 0) / ns.length : pos[it];
      }
      layers[l].sort((a, b) => key[a] - key[b]); // stable: ties keep their order
      layers[l].forEach((it, j) => { pos[it] = j; });
    }
    const c = countCrossings(segments, pos);
    if (c < bestCrossings) {
      bestCrossings = c;
      best = layers.map((row) => row.slice());
    }
  }
  for (let l = 0; l < depth; l++) layers[l] = best[l];
  place();

  // Coordinates: columns by layer, boxes stacked and centred in each column.
  const x = new Float64Array(itemLayer.length);
  const y = new Float64Array(itemLayer.length);
  const h = (it) => (it < n ? DAG.NODE_H : DAG.DUMMY_H);
  const colHeight = layers.map((row) => row.reduce((s, it) => s + h(it), 0) + Math.max(0, row.length - 1) * DAG.ROW_GAP);
  const height = Math.max(DAG.NODE_H, ...colHeight, 0) + 2 * DAG.PAD;
  for (let l = 0; l < depth; l++) {
    let top = DAG.PAD + (height - 2 * DAG.PAD - colHeight[l]) / 2;
    for (const it of layers[l]) {
      x[it] = DAG.PAD + l * (DAG.NODE_W + DAG.LAYER_GAP);
      y[it] = top;
      top += h(it) + DAG.ROW_GAP;
    }
  }
  const width = Math.max(1, depth) * (DAG.NODE_W + DAG.LAYER_GAP) - DAG.LAYER_GAP + 2 * DAG.PAD;

  // Edge paths: from the parent's right side to the child's left side, a horizontal-tangent
  // Bézier per segment; through a dummy the path runs straight across its column's slot.
  const r = (v) => Math.round(v * 10) / 10;
  const mid = (it) => y[it] + (it < n ? DAG.NODE_H : DAG.DUMMY_H) / 2;
  const drawn = edges.map((e) => {
    let x0 = x[e.chain[0]] + DAG.NODE_W;
    let y0 = mid(e.chain[0]);
    let d = `M${r(x0)},${r(y0)}`;
    for (let k = 1; k < e.chain.length; k++) {
      const it = e.chain[k];
      const [x1, y1] = [x[it], mid(it)];
      const bend = (x1 - x0) / 2;
      d += ` C${r(x0 + bend)},${r(y0)} ${r(x1 - bend)},${r(y1)} ${r(x1)},${r(y1)}`;
      [x0, y0] = [x1 + DAG.NODE_W, y1];
      if (it >= n) d += ` L${r(x0)},${r(y0)}`;
    }
    return { from: nodes[e.p].id, to: nodes[e.c].id, on: e.on, d };
  });
  return {
    width,
    height,
    layers: depth,
    crossings: bestCrossings,
    straight,
    nodes: nodes.map((node, i) => ({ id: node.id, index: i, layer: layer[i], x: x[i], y: y[i] })),
    edges: drawn,
  };
}

/** Layer of each node: 0 for roots, else one more than its deepest parent (Kahn's order). */
function longestPathLayers(n, edges) {
  const layer = new Array(n).fill(0);
  const indeg = new Array(n).fill(0);
  const children = Array.from({ length: n }, () => []);
  for (const e of edges) {
    indeg[e.c]++;
    children[e.p].push(e.c);
  }
  const queue = [];
  for (let i = 0; i < n; i++) if (indeg[i] === 0) queue.push(i);
  for (let head = 0; head < queue.length; head++) {
    const p = queue[head];
    for (const c of children[p]) {
      layer[c] = Math.max(layer[c], layer[p] + 1);
      if (--indeg[c] === 0) queue.push(c);
    }
  }
  // Workflows are acyclic (the API refuses cycles); were one here, its nodes keep the layer
  // reached so far rather than looping.
  return layer;
}

/** Crossings between adjacent layers: per layer pair, inversions of the lower ends once the
 * segments are sorted by their upper ends. Segments are [upper, lower, upper's layer]. */
function countCrossings(segments, pos) {
  const byLayer = new Map();
  for (const s of segments) {
    if (!byLayer.has(s[2])) byLayer.set(s[2], []);
    byLayer.get(s[2]).push(s);
  }
  let total = 0;
  for (const group of byLayer.values()) {
    group.sort((a, b) => pos[a[0]] - pos[b[0]] || pos[a[1]] - pos[b[1]]);
    total += inversions(group.map((s) => pos[s[1]]));
  }
  return total;
}

/** Pairs i < j with a[i] > a[j], by merge sort. */
function inversions(a) {
  if (a.length < 2) return 0;
  let count = 0;
  let src = a.slice();
  let dst = new Array(a.length);
  for (let width = 1; width < src.length; width *= 2) {
    for (let lo = 0; lo < src.length; lo += 2 * width) {
      const mid = Math.min(lo + width, src.length);
      const hi = Math.min(lo + 2 * width, src.length);
      let i = lo;
      let j = mid;
      let k = lo;
      while (i < mid && j < hi) {
        if (src[j] < src[i]) {
          count += mid - i;
          dst[k++] = src[j++];
        } else dst[k++] = src[i++];
      }
      while (i < mid) dst[k++] = src[i++];
      while (j < hi) dst[k++] = src[j++];
    }
    [src, dst] = [dst, src];
  }
  return count;
}

// ---------------------------------------------------------------- drawing

const NODE_MARK = { waiting: '·', running: '▶', succeeded: '✔', failed: '✘', skipped: '↷', cancelled: '⊘' };
const TERMINAL_NODE = new Set(['succeeded', 'failed', 'skipped', 'cancelled']);

/** Creates an SVG element; attributes through setAttribute, text as a text node. */
function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function setAttr(node, name, value) {
  const s = String(value);
  if (node.getAttribute(name) !== s) node.setAttribute(name, s);
}

function shortId(id) {
  return id.length > DAG.ID_CHARS ? `${id.slice(0, DAG.ID_CHARS - 1)}…` : id;
}

/** Whether an edge's condition holds once its parent ended (null while the parent has not). */
function edgeMet(on, parentState) {
  if (!TERMINAL_NODE.has(parentState)) return null;
  switch (on) {
    case 'failure': return parentState === 'failed' || parentState === 'cancelled';
    case 'always': return true;
    case 'not_failed': return parentState === 'succeeded' || parentState === 'skipped';
    default: return parentState === 'succeeded';
  }
}

/** The box's second line: state in words (never colour alone), and shard progress. */
function nodeLines(node) {
  const p = node.progress || {};
  let prog = '';
  if (node.shards) prog = `${p.succeeded ?? 0}/${p.total ?? node.shards.count}${p.failed ? ` · ${p.failed}✘` : ''}`;
  return { state: `${NODE_MARK[node.state] || '?'} ${node.state}`, prog };
}

function nodeTitle(node) {
  const lines = [`${node.id}: ${node.state}`];
  if (node.trigger === 'any') lines.push('runs when any parent edge is met');
  if (node.shards) {
    const p = node.progress || {};
    lines.push(`shards: ${p.succeeded} of ${p.total} succeeded, ${p.failed} failed, ${p.live} live, ${p.created} created`);
  }
  if (node.reason) lines.push(node.reason);
  return lines.join('\n');
}

/**
 * Draws `layout` into a new <svg>. `onSelect(id)` is called when a box is clicked or
 * activated with the keyboard. Returns { svg, update(nodes), select(id), zoom(scale) }.
 */
function drawDag(layout, onSelect) {
  const { width, height } = layout;
  const svg = svgEl('svg', {
    id: 'wf-dag', class: 'dag', xmlns: SVG_NS, viewBox: `0 0 ${width} ${height}`, width, height,
    role: 'group', 'aria-label': 'workflow graph',
  });
  const defs = svgEl('defs');
  for (const kind of EDGE_KINDS) {
    const m = svgEl('marker', {
      id: `wf-arrow-${kind}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 9, markerHeight: 9,
      orient: 'auto-start-reverse', markerUnits: 'userSpaceOnUse',
    });
    m.append(svgEl('path', { d: 'M0,1 L9,5 L0,9 z', class: `arrow on-${kind}` }));
    defs.append(m);
  }
  svg.append(defs);

  const edgeLayer = svgEl('g', { class: 'edges' });
  const edges = layout.edges.map((e) => {
    const kind = EDGE_KINDS.includes(e.on) ? e.on : 'success';
    const path = svgEl('path', {
      class: `edge on-${kind}`, d: e.d, 'data-from': e.from, 'data-to': e.to, 'data-on': kind,
      'marker-end': `url(#wf-arrow-${kind})`,
    });
    path.append(svgEl('title', {}, `${e.from} → ${e.to} (on ${kind})`));
    edgeLayer.append(path);
    return { ...e, kind, path };
  });
  svg.append(edgeLayer);

  const nodeLayer = svgEl('g', { class: 'nodes' });
  const boxes = new Map();
  for (const nd of layout.nodes) {
    const g = svgEl('g', {
      class: 'wf-node', 'data-node': nd.id, 'data-layer': nd.layer, transform: `translate(${nd.x},${nd.y})`,
      tabindex: 0, role: 'button',
    });
    const title = svgEl('title', {}, nd.id);
    const box = svgEl('rect', { class: 'box', width: DAG.NODE_W, height: DAG.NODE_H, rx: 5 });
    const stripe = svgEl('rect', { class: 'stripe', width: 6, height: DAG.NODE_H, rx: 2 });
    const id = svgEl('text', { class: 'id', x: 14, y: 18 }, shortId(nd.id));
    const state = svgEl('text', { class: 'state', x: 14, y: 37 });
    const prog = svgEl('text', { class: 'prog', x: DAG.NODE_W - 8, y: 37, 'text-anchor': 'end' });
    g.append(title, box, stripe, id, state, prog);
    nodeLayer.append(g);
    boxes.set(nd.id, { g, title, state, prog, any: null });
  }
  svg.append(nodeLayer);

  const activate = (ev) => {
    const g = ev.target.closest && ev.target.closest('g.wf-node');
    if (!g) return;
    if (ev.type === 'keydown') {
      if (ev.key !== 'Enter' && ev.key !== ' ') return;
      ev.preventDefault();
    }
    onSelect(g.getAttribute('data-node'));
  };
  svg.addEventListener('click', activate);
  svg.addEventListener('keydown', activate);

  let selected = null;
  return {
    svg,
    /** Restyles boxes and edges from the nodes of a fresh WorkflowView; never re-lays out. */
    update(nodes) {
      const states = new Map();
      for (const node of nodes) {
        const b = boxes.get(node.id);
        if (!b) continue;
        states.set(node.id, node.state);
        const lines = nodeLines(node);
        setAttr(b.g, 'class', `wf-node n-${String(node.state).replace(/[^a-z_]/g, '')}${node.id === selected ? ' selected' : ''}`);
        setAttr(b.g, 'data-state', node.state);
        setAttr(b.g, 'aria-label', `${node.id}: ${node.state}${lines.prog ? `, shards ${lines.prog}` : ''}`);
        setText(b.state, lines.state);
        setText(b.prog, lines.prog);
        setText(b.title, nodeTitle(node));
        if (node.trigger === 'any' && !b.any) {
          b.any = svgEl('text', { class: 'any', x: DAG.NODE_W - 8, y: 16, 'text-anchor': 'end' }, 'any');
          b.g.setAttribute('data-trigger', 'any');
          b.g.append(b.any);
        }
      }
      for (const e of edges) {
        const met = edgeMet(e.kind, states.get(e.from));
        const hl = selected !== null && (e.from === selected || e.to === selected);
        setAttr(e.path, 'class', `edge on-${e.kind}${met === false ? ' unmet' : ''}${hl ? ' hl' : ''}`);
      }
    },
    /** Marks one box (and its edges) as selected; null clears. */
    select(id) {
      selected = id;
      for (const [key, b] of boxes) b.g.classList.toggle('selected', key === id);
      for (const e of edges) e.path.classList.toggle('hl', id !== null && (e.from === id || e.to === id));
    },
    /** Scales the drawing (1 = 100%); the view box stays, so nothing is laid out again. */
    zoom(scale) {
      setAttr(svg, 'width', Math.max(1, Math.round(width * scale)));
      setAttr(svg, 'height', Math.max(1, Math.round(height * scale)));
    },
  };
}
