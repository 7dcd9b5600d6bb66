// The live dashboard: reads GET /metrics (Prometheus text) and GET /readyz once
// a second and shows what an on-call engineer looks at first. Rates are deltas
// between scrapes; latency percentiles come from the histogram's buckets over
// the last LATENCY_WINDOW scrapes, interpolated as Prometheus's
// histogram_quantile does. No build step, no library.
'use strict';

(() => {
  const KEY = 'pusher-api-key';
  const HISTORY = 120;
  const LATENCY_WINDOW = 10;
  const $ = (id) => document.getElementById(id);

  /** Prometheus text format -> Map(name -> [{ labels, value }]). */
  function parse(text) {
    const out = new Map();
    for (const line of text.split('\n')) {
      if (line === '' || line[0] === '#') continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
      if (m === null) continue;
      const labels = {};
      if (m[2]) {
        for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
          labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
        }
      }
      if (!out.has(m[1])) out.set(m[1], []);
      out.get(m[1]).push({ labels, value: Number(m[3]) });
    }
    return out;
  }

  const samples = (m, name) => m.get(name) || [];
  const total = (m, name) => samples(m, name).reduce((n, s) => n + s.value, 0);
  const byLabel = (m, name, label) => new Map(samples(m, name).map((s) => [s.labels[label], s.value]));

  /** Counter increase between two scrapes (a reset counts from zero). */
  function increase(now, before) {
    return before === undefined || now < before ? now : now - before;
  }

  /** Quantile q of the observations between two scrapes of histogram `name`. */
  function quantile(q, name, now, before) {
    const cur = samples(now, `${name}_bucket`);
    if (cur.length === 0) return null;
    const old = before ? new Map(samples(before, `${name}_bucket`).map((s) => [s.labels.le, s.value])) : new Map();
    const buckets = cur.map((s) => ({ le: Number(s.labels.le), n: increase(s.value, old.get(s.labels.le)) })).sort((a, b) => a.le - b.le);
    const count = buckets[buckets.length - 1].n;
    if (!(count > 0)) return null;
    const rank = q * count;
    for (let i = 0; i < buckets.length; i++) {
      if (buckets[i].n < rank) continue;
      const lower = i === 0 ? 0 : buckets[i - 1].le;
      if (!Number.isFinite(buckets[i].le)) return lower;
      const below = i === 0 ? 0 : buckets[i - 1].n;
      const inBucket = buckets[i].n - below;
      return lower + (buckets[i].le - lower) * (inBucket > 0 ? (rank - below) / inBucket : 1);
    }
    return null;
  }

  const fmt = new Intl.NumberFormat('en', { maximumFractionDigits: 0 });
  function num(v) {
    if (v === null || v === undefined || !Number.isFinite(v)) return '–';
    if (Math.abs(v) >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
    if (Math.abs(v) >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
    return fmt.format(v);
  }
  function seconds(v) {
    if (v === null) return '–';
    if (v < 0.001) return `${(v * 1000).toFixed(2)} ms`;
    // Two significant digits below 10 ms, whole milliseconds above (toPrecision(2) would write 2.3e+2).
    if (v < 0.01) return `${(v * 1000).toPrecision(2).replace(/\.0+$/, '')} ms`;
    if (v < 1) return `${Math.round(v * 1000)} ms`;
    return `${v.toFixed(2)} s`;
  }

  function setText(id, text) {
    const el = $(id);
    if (el.textContent !== text) el.textContent = text;
  }

  function kv(id, pairs) {
    const dl = $(id);
    dl.replaceChildren(...pairs.flatMap(([k, v]) => {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      return [dt, dd];
    }));
  }

  // ---- charts: a line per series on a canvas, scaled to its largest value --

  function draw(canvasId, lines, format) {
    const canvas = $(canvasId);
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    let max = 0;
    for (const l of lines) for (const v of l.values) if (v !== null && v > max) max = v;
    const top = max > 0 ? max * 1.1 : 1;
    const style = getComputedStyle(document.body);
    ctx.strokeStyle = style.getPropertyValue('--line');
    ctx.fillStyle = style.getPropertyValue('--muted');
    ctx.font = '11px system-ui, sans-serif';
    ctx.beginPath();
    ctx.moveTo(0, h - 0.5);
    ctx.lineTo(w, h - 0.5);
    ctx.stroke();
    if (max > 0) ctx.fillText(format(max), 4, 12);
    const step = w / (HISTORY - 1);
    for (const l of lines) {
      ctx.strokeStyle = l.color;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      let pen = false;
      const offset = HISTORY - l.values.length;
      l.values.forEach((v, i) => {
        if (v === null) {
          pen = false;
          return;
        }
        const x = (offset + i) * step;
        const y = h - 2 - (v / top) * (h - 16);
        if (pen) ctx.lineTo(x, y);
        else ctx.moveTo(x, y);
        pen = true;
      });
      ctx.stroke();
    }
  }

  // ---- the API key, when the server asks for one -------------------------

  function headers() {
    const key = localStorage.getItem(KEY);
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  function askKey(why) {
    const dialog = $('key-dialog');
    if (why) $('key-why').textContent = why;
    $('key-input').value = localStorage.getItem(KEY) || '';
    if (!dialog.open) dialog.showModal();
  }

  $('key-button').addEventListener('click', () => askKey(null));
  $('key-form').addEventListener('submit', () => {
    const key = $('key-input').value.trim();
    if (key) localStorage.setItem(KEY, key);
    else localStorage.removeItem(KEY);
    tick();
  });
  $('key-clear').addEventListener('click', () => {
    localStorage.removeItem(KEY);
    $('key-dialog').close();
  });

  async function get(path) {
    const res = await fetch(path, { headers: headers(), cache: 'no-store' });
    if (res.status === 401 || res.status === 403) {
      askKey(res.status === 401 ? 'This server needs an API key to show its numbers.' : 'The key was refused; enter another one.');
      throw new Error(`${path}: ${res.status}, waiting for an API key`);
    }
    return res;
  }

  // ---- one update ----------------------------------------------------------

  const scrapes = [];
  const series = { pushes: [], delivered: [], p50: [], p99: [] };
  let busy = false;

  function push(list, v) {
    list.push(v);
    if (list.length > HISTORY) list.shift();
  }

  function render(m, t, readyz) {
    const prev = scrapes[scrapes.length - 1];
    const old = scrapes.length >= LATENCY_WINDOW ? scrapes[scrapes.length - LATENCY_WINDOW] : scrapes[0];
    const dt = prev ? (t - prev.t) / 1000 : 0;
    const rate = (name) => (prev && dt > 0 ? increase(total(m, name), total(prev.m, name)) / dt : null);

    const info = samples(m, 'pusher_info')[0];
    if (info) setText('info', `v${info.labels.version} · ${info.labels.driver} queue`);
    const badge = $('ready');
    badge.className = `badge ${readyz.ready ? 'ok' : 'bad'}`;
    const notOk = Object.entries(readyz.checks || {}).filter(([, v]) => v !== 'ok').map(([k, v]) => `${k}: ${v}`);
    setText('ready', readyz.ready ? 'ready' : `not ready${notOk.length ? ` (${notOk.join('; ')})` : ''}`);

    setText('connections', num(total(m, 'pusher_connections')));
    setText('groups', num(total(m, 'pusher_groups')));
    const pushes = rate('pusher_pushes_accepted_total');
    const delivered = rate('pusher_pushes_delivered_total');
    setText('pushes-rate', num(pushes));
    setText('delivered-rate', num(delivered));
    const p50 = quantile(0.5, 'pusher_push_latency_seconds', m, old && old.m);
    const p99 = quantile(0.99, 'pusher_push_latency_seconds', m, old && old.m);
    setText('p50', seconds(p50));
    setText('p99', seconds(p99));
    if (prev) {
      push(series.pushes, pushes);
      push(series.delivered, delivered);
      push(series.p50, p50);
      push(series.p99, p99);
    }
    draw('chart-rate', [{ values: series.pushes, color: '#2563eb' }, { values: series.delivered, color: '#16a34a' }], num);
    draw('chart-latency', [{ values: series.p50, color: '#9333ea' }, { values: series.p99, color: '#ea580c' }], (v) => seconds(v));

    // Per shard
    const cols = ['pusher_connections', 'pusher_groups', 'pusher_pushes_delivered_total', 'pusher_pushes_undelivered_total',
      'pusher_pushes_dropped_total', 'pusher_slow_clients_closed_total', 'pusher_shard_restarts_total'].map((n) => byLabel(m, n, 'shard'));
    const before = prev ? byLabel(prev.m, 'pusher_pushes_delivered_total', 'shard') : new Map();
    const up = byLabel(m, 'pusher_shard_up', 'shard');
    const rows = [...up.keys()].sort((a, b) => Number(a) - Number(b)).map((shard) => {
      const tr = document.createElement('tr');
      tr.dataset.shard = shard;
      const deliveredNow = cols[2].get(shard) || 0;
      const cells = [shard, up.get(shard) === 1 ? 'up' : 'down', num(cols[0].get(shard)), num(cols[1].get(shard)),
        num(prev && dt > 0 ? increase(deliveredNow, before.get(shard)) / dt : null), num(deliveredNow),
        num(cols[3].get(shard)), num(cols[4].get(shard)), num(cols[5].get(shard)), num(cols[6].get(shard))];
      for (const c of cells) {
        const td = document.createElement('td');
        td.textContent = c;
        tr.append(td);
      }
      if (up.get(shard) !== 1) tr.className = 'error';
      return tr;
    });
    $('shards').tBodies[0].replaceChildren(...rows);

    // Queue and processors
    const batches = increase(total(m, 'pusher_processor_batches_total'), prev && total(prev.m, 'pusher_processor_batches_total'));
    const messages = increase(total(m, 'pusher_processor_messages_total'), prev && total(prev.m, 'pusher_processor_messages_total'));
    const queue = [
      ['driver', info ? info.labels.driver : '–'],
      ['connected', total(m, 'pusher_queue_connected') === 1 ? 'yes' : 'no'],
    ];
    if (m.has('pusher_queue_depth')) queue.push(['depth', num(total(m, 'pusher_queue_depth'))]);
    queue.push(['in flight', num(total(m, 'pusher_queue_in_flight'))]);
    if (m.has('pusher_nsq_consumers_connected')) queue.push(['nsq consumers connected', `${total(m, 'pusher_nsq_consumers_connected')} of ${total(m, 'pusher_processor_threads')}`]);
    queue.push(
      ['processor threads', num(total(m, 'pusher_processor_threads'))],
      ['batches / s', num(rate('pusher_processor_batches_total'))],
      ['messages per batch', prev && batches > 0 ? (messages / batches).toFixed(1) : '–'],
      ['requeued', num(total(m, 'pusher_processor_requeued_total'))],
      ['undecodable', num(total(m, 'pusher_processor_undecodable_total'))],
    );
    kv('queue', queue);

    const errors = [];
    for (const [name, kind] of [['pusher_ws_errors_total', 'ws'], ['pusher_http_errors_total', 'http'], ['pusher_grpc_errors_total', 'grpc']]) {
      for (const s of samples(m, name)) if (s.value > 0) errors.push([`${kind} ${s.labels.code}`, num(s.value)]);
    }
    kv('errors', errors.length > 0 ? errors : [['none', '']]);

    scrapes.push({ t, m });
    if (scrapes.length > LATENCY_WINDOW) scrapes.shift();
    setText('updated', `Last update ${new Date(t).toLocaleTimeString()}.`);
  }

  async function tick() {
    if (busy) return;
    busy = true;
    try {
      const [metrics, ready] = await Promise.all([get('/metrics'), get('/readyz')]);
      if (!metrics.ok) throw new Error(`/metrics answered ${metrics.status}`);
      const text = await metrics.text();
      const readyz = await ready.json();
      render(parse(text), Date.now(), readyz);
      $('problem').hidden = true;
    } catch (err) {
      const p = $('problem');
      p.textContent = `Cannot read the server: ${err.message}`;
      p.hidden = false;
      const badge = $('ready');
      badge.className = 'badge bad';
      badge.textContent = 'unreachable';
    } finally {
      busy = false;
    }
  }

  tick();
  setInterval(tick, 1000);
})();
