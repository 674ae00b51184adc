// darkchatd's live status page: fetches /status.json every few seconds and
// draws it. No library, no inline code: the page runs under the chat
// page's Content Security Policy.
'use strict';

(function () {
  const REFRESH_MS = 5000;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const W = 300;
  const H = 100;

  const $ = (id) => document.getElementById(id);
  const setText = (id, s) => { $(id).textContent = s; };

  function seconds(s) {
    if (s === null || s === undefined) return '–';
    if (s < 0.01) return (s * 1000).toFixed(1) + ' ms';
    if (s < 1) return Math.round(s * 1000) + ' ms';
    return s.toFixed(2) + ' s';
  }

  function number(v) {
    if (v >= 100) return Math.round(v).toString();
    if (v >= 10) return v.toFixed(1);
    return v.toFixed(2).replace(/\.?0+$/, '') || '0';
  }

  // niceMax rounds a plot's top up to 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) {
      if (v <= m * p) return m * p;
    }
    return 10 * p;
  }

  // plot draws series ({values, cls}) against t (ms) into the figure's
  // SVG: x spans the history up to now, y from 0 to a nice maximum. A null
  // value breaks the line; a lone point is drawn as a short dash.
  function plot(id, t, nowMs, spanMs, series, fmt) {
    const fig = $(id);
    const svg = fig.querySelector('svg');
    let max = 0;
    for (const s of series) {
      for (const v of s.values) {
        if (v !== null && v > max) max = v;
      }
    }
    max = niceMax(max);
    const start = nowMs - spanMs;
    const paths = [];
    for (const s of series) {
      const runs = [];
      let run = null;
      for (let i = 0; i < t.length; i++) {
        const v = s.values[i];
        const x = ((t[i] - start) / spanMs) * W;
        if (v === null || x < 0) {
          run = null;
          continue;
        }
        const y = H - (v / max) * (H - 4) - 2;
        if (!run) {
          run = [];
          runs.push(run);
        }
        run.push([x, y]);
      }
      let d = '';
      for (const r of runs) {
        d += 'M' + r.map((p) => p[0].toFixed(2) + ' ' + p[1].toFixed(2)).join('L');
        if (r.length === 1) d += 'h1.5';
      }
      const path = document.createElementNS(SVG_NS, 'path');
      path.setAttribute('class', 'line ' + s.cls);
      path.setAttribute('vector-effect', 'non-scaling-stroke');
      path.setAttribute('d', d);
      paths.push(path);
    }
    const base = document.createElementNS(SVG_NS, 'path');
    base.setAttribute('class', 'grid');
    base.setAttribute('vector-effect', 'non-scaling-stroke');
    base.setAttribute('d', 'M0 ' + (H - 2) + 'H' + W + 'M0 2H' + W);
    svg.replaceChildren(base, ...paths);
    fig.querySelector('.ymax').textContent = fmt(max);
  }

  function peerItem(p) {
    const li = document.createElement('li');
    li.dataset.peer = p.id;
    li.className = p.path;
    const mark = document.createElement('span');
    mark.className = 'mark ' + p.path;
    mark.textContent = p.path;
    const id = document.createElement('span');
    id.className = 'id mono';
    id.textContent = p.id;
    const addr = document.createElement('span');
    addr.className = 'addr mono';
    addr.textContent = p.addr;
    li.append(mark, id, addr);
    return li;
  }

  function render(st) {
    setText('node-id', st.id || '');
    setText('reachability', st.reachability || 'unknown');
    $('reachability').dataset.value = st.reachability || 'unknown';
    setText('peer-count', String(st.peers_direct + st.peers_relayed));
    setText('peer-split', st.peers_direct + ' direct, ' + st.peers_relayed + ' relayed');
    setText('session-count', String(st.sessions_tcp + st.sessions_ws));
    setText('session-split', st.sessions_tcp + ' tcp, ' + st.sessions_ws + ' ws');
    setText('channels', String(st.channels));
    const m = st.minute;
    setText('latency', m.latency_p99_seconds === null ? 'no deliveries'
      : (m.latency_p99_above ? '> ' : '') + seconds(m.latency_p99_seconds));
    setText('latency-p50', m.latency_p50_seconds === null ? '' : 'p50 ' + seconds(m.latency_p50_seconds));
    if (m.dm_sent === 0 && m.dm_delivered === 0) {
      setText('dm', 'no DMs');
      setText('dm-split', '');
    } else {
      setText('dm', m.dm_sent > 0 ? Math.round(100 * m.dm_delivered / m.dm_sent) + '%' : '–');
      setText('dm-split', m.dm_delivered + ' delivered / ' + m.dm_sent + ' sent');
    }

    $('peers').replaceChildren(...st.peers.map(peerItem));
    $('no-peers').hidden = st.peers.length > 0;
    setText('stats', st.stats.join('\n'));

    const h = st.history;
    const spanMs = h.span_seconds * 1000;
    plot('plot-rate', h.t, st.now_ms, spanMs, [
      { values: h.messages_in_per_second, cls: 'in' },
      { values: h.messages_out_per_second, cls: 'out' },
    ], (v) => number(v) + '/s');
    plot('plot-latency', h.t, st.now_ms, spanMs, [
      { values: h.latency_p99_seconds, cls: 'p99' },
    ], seconds);
    plot('plot-drops', h.t, st.now_ms, spanMs, [
      { values: h.drops, cls: 'drops' },
    ], number);
    for (const el of document.querySelectorAll('.axis .now')) el.textContent = 'now';
    setText('updated', 'updated ' + new Date(st.now_ms).toLocaleTimeString() + ', every ' + REFRESH_MS / 1000 + ' s');
  }

  async function refresh() {
    try {
      const resp = await fetch('/status.json', { cache: 'no-store' });
      if (!resp.ok) throw new Error('/status.json: HTTP ' + resp.status);
      render(await resp.json());
      $('error').hidden = true;
      document.body.dataset.state = 'ok';
    } catch (e) {
      setText('error', 'The node does not answer (' + e.message + '); retrying every ' + REFRESH_MS / 1000 + ' s.');
      $('error').hidden = false;
      document.body.dataset.state = 'error';
    }
    setTimeout(refresh, REFRESH_MS);
  }

  refresh();
})();
