// The demo page: gopusher's browser client (join with card_id and app_id, show
// every frame that arrives) and a push form that calls the HTTP API of the
// server that served the page. No build step, no library.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const KEY = 'pusher-api-key';
  let ws = null;

  const wsPort = document.querySelector('meta[name="pusher-ws-port"]').content;
  const wsScheme = location.protocol === 'https:' ? 'wss' : 'ws';
  $('ws-url').value = `${wsScheme}://${location.hostname}:${wsPort}/ws`;
  const card = `demo-${Math.random().toString(36).slice(2, 7)}`;
  $('card-id').value = card;
  $('push-to').value = card;
  $('api-key').value = localStorage.getItem(KEY) || '';

  function status(text, kind) {
    const s = $('status');
    s.textContent = text;
    s.className = `badge ${kind}`;
  }

  /** Adds a line to the feed, newest first; text only (never HTML). */
  function feed(text, kind) {
    const li = document.createElement('li');
    const time = document.createElement('time');
    time.textContent = new Date().toLocaleTimeString();
    const span = document.createElement('span');
    span.className = kind;
    span.textContent = text;
    li.append(time, span);
    $('feed').prepend(li);
  }

  function connect(url, cardId, appId, token) {
    if (ws !== null) ws.close();
    status('connecting…', 'warn');
    const sock = new WebSocket(url);
    ws = sock;
    let joined = false;
    sock.onopen = () => {
      const data = appId ? { app_id: appId, card_id: cardId } : { card_id: cardId };
      if (token) data.token = token;
      sock.send(JSON.stringify({ event: 'join', data }));
      feed(`connected; joining ${cardId}${appId ? ` (app ${appId})` : ''}`, 'sys');
    };
    sock.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        feed(`unreadable frame: ${ev.data}`, 'error');
        return;
      }
      if (msg.type === 2) {
        feed(`error ${msg.code}: ${msg.data}`, 'error');
        return;
      }
      if (!joined && msg.data === 'ok') {
        joined = true;
        status(`joined ${cardId}`, 'ok');
        feed(`joined ${cardId}: pushes to it arrive below`, 'sys');
        return;
      }
      feed(String(msg.data), 'push');
    };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      status('not connected', 'bad');
      feed(`disconnected (${ev.code}${ev.reason ? ` ${ev.reason}` : ''})`, 'sys');
      // 4401-4403: the server wants a signed join (auth.join_secret or join_key_file).
      if (ev.code >= 4401 && ev.code <= 4403) feed('signed joins are on: paste a token for this card_id into "join token" (e.g. from `pusher token --card <card_id>`) and join again', 'error');
      $('leave').disabled = true;
    };
    $('leave').disabled = false;
  }

  $('join-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const cardId = $('card-id').value.trim();
    connect($('ws-url').value.trim(), cardId, $('app-id').value.trim(), $('join-token').value.trim());
    if ($('push-to').value.trim() === '') $('push-to').value = cardId;
    curl();
  });
  $('leave').addEventListener('click', () => ws && ws.close());

  function pushBody() {
    const to = $('push-to').value.split(',').map((s) => s.trim()).filter((s) => s !== '');
    const body = { from: 'demo', to, content: $('push-content').value };
    const app = $('push-app').value.trim();
    if (app) body.appID = app;
    return body;
  }

  function curl() {
    const key = $('api-key').value.trim() ? " -H 'Authorization: Bearer <key>'" : '';
    const json = JSON.stringify(pushBody()).replace(/'/g, "'\\''");
    $('curl').textContent = `curl -X POST ${location.origin}/push${key} -d '${json}'`;
  }
  for (const id of ['push-to', 'push-app', 'push-content', 'api-key']) $(id).addEventListener('input', curl);
  curl();

  $('push-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const key = $('api-key').value.trim();
    if (key) localStorage.setItem(KEY, key);
    else localStorage.removeItem(KEY);
    const result = $('push-result');
    try {
      const res = await fetch('/push', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...(key ? { Authorization: `Bearer ${key}` } : {}) },
        body: JSON.stringify(pushBody()),
      });
      const answer = await res.json();
      result.className = res.ok ? 'muted' : 'error';
      result.textContent = res.ok ? `accepted (${res.status})` : `${res.status} ${answer.error || ''}: ${answer.message || ''}`;
      if (res.status === 401 || res.status === 403) $('api-key').focus();
    } catch (err) {
      result.className = 'error';
      result.textContent = `the push failed: ${err.message}`;
    }
  });

  // Joined at once: the first thing a visitor sees is a push arriving.
  connect($('ws-url').value, card, '');
})();
