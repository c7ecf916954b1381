// hookroute web console: plain JavaScript, no build step, no dependency.
//
// Everything it shows comes from the admin API (README: Operating), called with
// the operator's bearer token, which lives in this tab's sessionStorage only.
// Every piece of data goes into the page as text (textContent, text nodes,
// attribute values), never parsed as HTML, so a payload or an error
// message cannot become markup. The page's Content-Security-Policy forbids
// inline scripts and styles, so this file holds every behaviour.
'use strict';

(() => {
  const API = '../api/'; // relative to /ui/, so the console works behind a path prefix too
  const TOKEN_KEY = 'hookroute.token';
  const view = document.getElementById('view');

  // silenceDeniedTo is the token the API refused the silence scope (403).
  // No route says what a token may do, so the silences page learns it from
  // the first refusal, and from then on shows why instead of a form that
  // cannot work. Another token is asked again.
  let silenceDeniedTo = null;
  const silenceDenied = () => silenceDeniedTo !== null && silenceDeniedTo === sessionStorage.getItem(TOKEN_KEY);

  // --- DOM helpers -------------------------------------------------------

  // h builds an element. Attributes named on* become listeners; children
  // that are not nodes become text nodes, so data is never parsed as HTML.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    add(el, children);
    return el;
  }

  function add(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const text = (v) => (v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));

  function table(columns, rows, cls) {
    return h('table', { class: 'list ' + (cls || '') },
      h('thead', null, h('tr', null, columns.map((c) => h('th', null, c)))),
      h('tbody', null, rows));
  }

  function badge(label, kind) {
    return h('span', { class: 'badge ' + (kind || label.replace(/\s+/g, '-')) }, label);
  }

  // shortTime is the API's RFC 3339 UTC time as the page writes it.
  const shortTime = (s) => s.replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC');

  function time(s) {
    if (!s) return '';
    return h('time', { datetime: s, title: s }, shortTime(s));
  }

  // link builds an in-app link; every part is URI-encoded, so an id with
  // any characters stays one path segment.
  function link(label, ...parts) {
    return h('a', { href: '#/' + parts.map(encodeURIComponent).join('/') }, label);
  }

  const qs = (params) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
    return q.toString();
  };

  // Large integers (SalesIQ's app_id exceeds 2^53) must survive a round
  // trip through the editor: where the browser gives the reviver the source
  // text, a number that would change is kept as raw JSON.
  function parseJSON(s) {
    if (typeof JSON.rawJSON !== 'function') return JSON.parse(s);
    return JSON.parse(s, (key, value, ctx) =>
      typeof value === 'number' && ctx && typeof ctx.source === 'string' && JSON.stringify(value) !== ctx.source
        ? JSON.rawJSON(ctx.source) : value);
  }

  const pretty = (v) => JSON.stringify(v, null, 2);

  // --- status bar --------------------------------------------------------

  // setStatus shows what the last operation is doing at the top of the
  // page: "running…", "done" or "failed: why".
  function setStatus(label, state, detail) {
    const el = document.getElementById('status');
    el.dataset.state = state;
    let msg;
    if (state === 'running') msg = 'running…';
    else if (state === 'done') msg = 'done' + (detail ? ' — ' + detail : '');
    else if (state === 'failed') msg = 'failed: ' + detail;
    else msg = detail || '';
    el.replaceChildren(h('strong', null, label + ': '), msg);
  }

  // track runs fn with its progress in the status bar. It resolves to fn's
  // value, or to undefined when fn failed (the failure is on the bar).
  async function track(label, fn, summary) {
    setStatus(label, 'running');
    try {
      const v = await fn();
      setStatus(label, 'done', summary ? summary(v) : '');
      return v;
    } catch (e) {
      setStatus(label, 'failed', e.message);
      return undefined;
    }
  }

  // --- API ---------------------------------------------------------------

  class APIError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // api calls the admin API. scope is the scope the route needs, for a clear
  // message on 403. A 401 means the token is gone or wrong: back to login.
  // body, when given, is sent as is if it is a string (already JSON).
  async function api(method, path, scope, body) {
    const init = { method, cache: 'no-store', headers: { Authorization: 'Bearer ' + (sessionStorage.getItem(TOKEN_KEY) || '') } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(API + path, init);
    } catch (e) {
      throw new APIError(0, 'the router did not answer (' + e.message + ')');
    }
    const raw = await resp.text();
    let data = null;
    try {
      data = raw ? parseJSON(raw) : null;
    } catch (e) {
      data = null;
    }
    if (resp.status === 401) {
      logout('The token was refused (401 Unauthorized): log in again.');
      throw new APIError(401, 'the token was refused (401 Unauthorized)');
    }
    if (resp.status === 403) throw new APIError(403, 'this token lacks the ' + scope + ' scope');
    if (!resp.ok) {
      const why = data && data.error ? data.error : resp.statusText;
      throw new APIError(resp.status, why + ' (HTTP ' + resp.status + ')');
    }
    return data;
  }

  // --- login -------------------------------------------------------------

  function logout(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById('login-message').textContent = message || '';
    route();
  }

  document.getElementById('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = document.getElementById('token');
    const token = input.value.trim();
    input.value = '';
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    document.getElementById('login-message').textContent = '';
    try {
      await api('GET', 'sinks', 'read');
    } catch (e) {
      if (e.status === 401) return; // api() is back on the login form with the message
      if (e.status !== 403) {
        sessionStorage.removeItem(TOKEN_KEY);
        document.getElementById('login-message').textContent = 'Could not check the token: ' + e.message;
        return;
      }
      route();
      setStatus('Log in', 'failed', 'logged in, but this token lacks the read scope: lists will not load');
      return;
    }
    route();
  });

  document.getElementById('logout').addEventListener('click', () => logout('Logged out.'));

  // --- routing -----------------------------------------------------------

  function route() {
    const loggedIn = !!sessionStorage.getItem(TOKEN_KEY);
    document.getElementById('login').hidden = loggedIn;
    document.getElementById('nav').hidden = !loggedIn;
    if (!loggedIn) {
      view.replaceChildren();
      document.getElementById('token').focus();
      return;
    }
    const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
    let parts;
    try {
      parts = path.split('/').map(decodeURIComponent);
    } catch (e) {
      parts = ['events'];
    }
    const params = Object.fromEntries(new URLSearchParams(query || ''));
    const name = parts[0] || 'events';
    const section = { event: 'events', delivery: 'deliveries' }[name] || name;
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('current', a.dataset.view === section);
    view.replaceChildren();
    switch (name) {
      case 'event': return eventView(parts[1], parts[2]);
      case 'deliveries': return deliveriesView(params, false);
      case 'dead': return deliveriesView(params, true);
      case 'delivery': return deliveryView(parts[1]);
      case 'sinks': return sinksView();
      case 'silences': return silencesView(params);
      case 'timers': return timersView(params);
      case 'trial': return trialView();
      default: return eventsView(params);
    }
  }

  window.addEventListener('hashchange', route);

  // filterForm builds the filter row of a listing; applying it changes the
  // address, so a filtered view can be bookmarked and reloaded.
  function filterForm(target, fields, params) {
    const inputs = {};
    const form = h('form', { class: 'filters', method: 'post' },
      fields.map(([name, label, options, placeholder]) => {
        const input = options
          ? h('select', { name, id: 'filter-' + name }, options.map(([v, l]) => h('option', { value: v }, l)))
          : h('input', { name, id: 'filter-' + name, type: 'text', placeholder: placeholder || '', spellcheck: 'false' });
        input.value = params[name] || '';
        inputs[name] = input;
        return h('label', null, label + ' ', input);
      }),
      h('button', { type: 'submit' }, 'Apply'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const values = {};
      for (const [k, el] of Object.entries(inputs)) values[k] = el.value.trim();
      const hash = '#/' + target + (qs(values) ? '?' + qs(values) : '');
      if (location.hash === hash) route(); else location.hash = hash;
    });
    return form;
  }

  // pager shows a listing page by page: fetchPage(cursor) answers
  // {items, next_cursor}; "More" fetches the next page.
  function pager(label, columns, fetchPage, row) {
    const tbody = h('tbody');
    const shown = [];
    const empty = h('p', { class: 'empty', hidden: true }, 'Nothing here.');
    const more = h('button', { type: 'button', class: 'more', hidden: true }, 'More');
    const el = h('div', { class: 'pager' },
      h('table', { class: 'list' }, h('thead', null, h('tr', null, columns.map((c) => h('th', null, c)))), tbody),
      empty, more);
    let cursor = '';
    const next = async () => {
      more.disabled = true;
      const page = await track(label, () => fetchPage(cursor), (p) => (shown.length + p.items.length) + ' shown' + (p.next_cursor ? ', more available' : ''));
      more.disabled = false;
      if (!page) return;
      for (const item of page.items) {
        shown.push(item);
        tbody.append(row(item));
      }
      cursor = page.next_cursor || '';
      more.hidden = !cursor;
      empty.hidden = shown.length > 0;
    };
    more.addEventListener('click', next);
    return { el, shown, load: next };
  }

  // --- events ------------------------------------------------------------

  function eventsView(params) {
    const filter = { source: params.source, event: params.event };
    const p = pager('Loading events', ['Received', 'Source', 'Event', 'ID', 'Matched rules'],
      (cursor) => api('GET', 'events?' + qs({ ...filter, cursor, limit: 50 }), 'read'),
      (e) => h('tr', { class: e.quarantined ? 'quarantined' : null },
        h('td', null, time(e.received_at)),
        h('td', null, e.source),
        h('td', null, e.event || '—'),
        h('td', { class: 'id' }, link(e.id, 'event', e.source, e.id), e.quarantined ? [' ', badge('quarantined')] : null),
        h('td', null, e.matched.length ? e.matched.join(', ') : h('span', { class: 'hint' }, 'none'))));
    view.append(h('h2', null, 'Events'),
      filterForm('events', [['source', 'Source'], ['event', 'Event', null, 'conversation.rated']], params), p.el);
    p.load();
  }

  async function eventView(source, id) {
    const e = await track('Loading event', () => api('GET', 'events/' + encodeURIComponent(id) + '?' + qs({ source }), 'read'));
    if (!e) return;
    const headers = Object.entries(e.headers || {}).sort(([a], [b]) => a.localeCompare(b));
    view.append(
      h('h2', null, 'Event ', h('code', null, e.id)),
      h('dl', { class: 'facts' },
        h('dt', null, 'Source'), h('dd', null, e.source),
        h('dt', null, 'Event'), h('dd', null, e.event || '—'),
        h('dt', null, 'Received'), h('dd', null, time(e.received_at)),
        h('dt', null, 'Matched rules'), h('dd', null, e.matched.length ? e.matched.join(', ') : 'none'),
        e.quarantined ? [h('dt', null, 'Quarantined'), h('dd', null, 'yes: the body verified but did not parse')] : null),
      h('h3', null, 'Deliveries'),
      (e.deliveries || []).length
        ? table(deliveryColumns(false), e.deliveries.map((d) => deliveryRow(d, false)))
        : h('p', { class: 'empty' }, 'No deliveries.'),
      h('h3', null, 'Payload'),
      e.payload !== undefined ? h('pre', { class: 'json', id: 'event-payload' }, pretty(e.payload))
        : h('p', { class: 'empty' }, 'The body is not JSON.'),
      h('h3', null, 'Headers'),
      headers.length ? table(['Name', 'Value'], headers.map(([k, v]) => h('tr', null, h('td', null, k), h('td', null, text(v)))), 'headers')
        : h('p', { class: 'empty' }, 'None stored.'));
  }

  // --- deliveries --------------------------------------------------------

  const statusKinds = { pending: 'pending', delivered: 'ok', dead: 'dead', suppressed: 'muted', silenced: 'muted', grouped: 'muted',
    waiting: 'pending', cancelled: 'muted' };

  // setAside reports whether a delivery was set aside without an attempt
  // (a cooldown or a schedule suppressed it, a silence muted it, an event
  // or an operator cancelled its timer): its last_error says why, which is
  // a note, not a failure.
  const setAside = (d) => d.status === 'suppressed' || d.status === 'silenced' || d.status === 'grouped' || d.status === 'cancelled';

  // whyView shows a delivery's last_error; a silenced one's names its
  // silence ("silenced by s_… (until …)"), which links to the silences page.
  function whyView(d) {
    const why = d.last_error || '';
    const m = d.status === 'silenced' ? /^(silenced by )(s_[A-Za-z0-9]+)/.exec(why) : null;
    if (!m) return why;
    return [m[1], h('a', { href: '#/silences?' + qs({ id: m[2] }), class: 'silence-link' }, m[2]), why.slice(m[0].length)];
  }

  function deliveryColumns(withReplay) {
    const cols = ['Created', 'ID', 'Source', 'Event', 'Rule', 'Sink', 'Status', 'Attempts', 'Last error'];
    return withReplay ? cols.concat(['']) : cols;
  }

  function statusBadge(d) {
    return [badge(d.status, statusKinds[d.status]), d.in_flight ? [' ', badge('in flight', 'pending')] : null];
  }

  function deliveryRow(d, withReplay) {
    const statusCell = h('td', { class: 'status' }, statusBadge(d));
    return h('tr', { 'data-delivery': d.id },
      h('td', null, time(d.created_at)),
      h('td', { class: 'id' }, link(d.id, 'delivery', d.id)),
      h('td', null, d.source),
      h('td', { class: 'id' }, link(d.event_id, 'event', d.source, d.event_id)),
      h('td', null, d.rule),
      h('td', null, d.sink),
      statusCell,
      h('td', { class: 'num' }, d.attempts),
      h('td', { class: setAside(d) ? 'note' : 'error' }, whyView(d)),
      withReplay ? h('td', null, replayButton(d, statusCell)) : null);
  }

  // reachedSink reports whether a delivery got to its sink at least once:
  // delivered now, or delivered before a replay whose attempts failed.
  function reachedSink(d) {
    return d.status === 'delivered' || (d.attempt_log || []).some((a) => a.outcome === 'delivered');
  }

  function replayButton(d, statusCell) {
    const btn = h('button', { type: 'button', class: 'replay', 'data-id': d.id }, 'Replay');
    const showStatus = (cur) => {
      if (!statusCell) return;
      statusCell.replaceChildren();
      add(statusCell, [statusBadge(cur)]);
    };
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      // The row may be old: the delivery can have gone out since the page
      // was loaded, or since this button replayed it. Its state now
      // decides whether to ask.
      const label = 'Replay ' + d.id;
      const cur = await track('Checking ' + d.id, () => api('GET', 'deliveries/' + encodeURIComponent(d.id), 'read'));
      if (!cur) {
        btn.disabled = false;
        return;
      }
      showStatus(cur);
      if (reachedSink(cur) && !confirm('This delivery already reached ' + cur.sink + (cur.status === 'delivered' ? '' : ' once (it is ' + cur.status + ' now)') +
        '. Replay it, sending it to ' + cur.sink + ' again?')) {
        setStatus(label, 'done', 'not replayed: nothing was sent');
        btn.disabled = false;
        return;
      }
      const r = await track(label, () => api('POST', 'deliveries/' + encodeURIComponent(d.id) + '/replay', 'replay'),
        (r) => 'the delivery is ' + r.status + ' again, with a fresh attempt budget');
      btn.disabled = false;
      if (!r) return;
      btn.textContent = 'Replayed';
      showStatus(r);
    });
    return btn;
  }

  const statusOptions = [['', 'any'], ['pending', 'pending'], ['delivered', 'delivered'], ['dead', 'dead'], ['suppressed', 'suppressed'], ['silenced', 'silenced'], ['grouped', 'grouped'],
    ['waiting', 'waiting'], ['cancelled', 'cancelled']];

  function deliveriesView(params, dead) {
    const filter = { status: dead ? 'dead' : params.status, sink: params.sink, rule: params.rule, source: params.source, since: params.since };
    const fields = [['sink', 'Sink'], ['rule', 'Rule'], ['source', 'Source'], ['since', 'Since', null, '24h, 7d or RFC 3339']];
    if (!dead) fields.unshift(['status', 'Status', statusOptions]);
    const p = pager(dead ? 'Loading dead letters' : 'Loading deliveries', deliveryColumns(dead),
      (cursor) => api('GET', 'deliveries?' + qs({ ...filter, cursor, limit: 50 }), 'read'),
      (d) => deliveryRow(d, dead));
    view.append(h('h2', null, dead ? 'Dead letters' : 'Deliveries'), filterForm(dead ? 'dead' : 'deliveries', fields, params));
    if (dead) {
      const result = h('span', { class: 'action-result', id: 'bulk-result' });
      const bulk = h('button', { type: 'button', id: 'replay-all', class: 'danger' }, 'Replay all shown');
      bulk.addEventListener('click', async () => {
        const n = p.shown.length;
        if (n === 0) {
          setStatus('Replay all shown', 'failed', 'no dead letter is shown');
          return;
        }
        if (!confirm('Replay the ' + n + ' dead deliveries matching these filters? They are spread out at 20 a second.')) return;
        bulk.disabled = true;
        // The API replays the newest matches first, up to max: with max set
        // to what is shown, that is the rows on the screen.
        const body = { status: 'dead', sink: filter.sink, rule: filter.rule, source: filter.source, since: filter.since, max: n };
        const r = await track('Replay all shown', () => api('POST', 'deliveries/replay', 'replay', body),
          (r) => r.replayed + ' of ' + r.matched + ' replayed' + (r.busy ? ', ' + r.busy + ' in flight left alone' : ''));
        bulk.disabled = false;
        if (r) result.textContent = r.replayed + ' replayed. Apply the filters again to see what is still dead.';
      });
      view.append(h('div', { class: 'row' }, bulk, result));
    }
    view.append(p.el);
    p.load();
  }

  async function deliveryView(id) {
    const d = await track('Loading delivery', () => api('GET', 'deliveries/' + encodeURIComponent(id), 'read'));
    if (!d) return;
    const status = h('dd', { class: 'status' }, statusBadge(d));
    view.append(
      h('h2', null, 'Delivery ', h('code', null, d.id)),
      h('dl', { class: 'facts' },
        h('dt', null, 'Event'), h('dd', null, link(d.event_id, 'event', d.source, d.event_id), ' from ', d.source),
        h('dt', null, 'Rule'), h('dd', null, d.rule, ' (route ', d.route, ')'),
        h('dt', null, 'Sink'), h('dd', null, d.sink),
        h('dt', null, 'Status'), status,
        h('dt', null, 'Attempts'), h('dd', null, d.attempts),
        d.next_attempt_at ? [h('dt', null, 'Next attempt'), h('dd', null, time(d.next_attempt_at))] : null,
        h('dt', null, 'Created'), h('dd', null, time(d.created_at)),
        h('dt', null, 'Updated'), h('dd', null, time(d.updated_at)),
        d.remote_id ? [h('dt', null, 'Remote id'), h('dd', null, d.remote_id)] : null,
        d.last_error ? [h('dt', null, setAside(d) ? 'Set aside' : 'Last error'), h('dd', { class: setAside(d) ? 'note' : 'error' }, whyView(d))] : null,
        d.replays ? [h('dt', null, 'Replays'), h('dd', null, d.replays, ' (last by ', d.replayed_by || '?', ' at ', time(d.replayed_at), ')')] : null),
      h('div', { class: 'row' }, replayButton(d, status),
        d.status === 'silenced' ? h('span', { class: 'hint' }, 'Replayed while its silence is still active, it is silenced again.') : null),
      h('h3', null, 'Attempts'),
      (d.attempt_log || []).length
        ? table(['Time', 'Duration', 'Outcome', 'Status', 'Error', 'Remote id'], d.attempt_log.map((a) => h('tr', null,
          h('td', null, time(a.at)),
          h('td', { class: 'num' }, a.duration_ms.toFixed(1) + ' ms'),
          h('td', null, badge(a.outcome, a.outcome === 'delivered' ? 'ok' : a.outcome === 'dead' ? 'dead' : 'pending')),
          h('td', { class: 'num' }, a.status_code || ''),
          h('td', { class: 'error' }, a.error || ''),
          h('td', null, a.remote_id || ''))), 'attempts')
        : h('p', { class: 'empty' }, 'No attempt yet.'));
  }

  // --- sinks -------------------------------------------------------------

  async function sinksView() {
    const tbody = h('tbody');
    view.append(h('h2', null, 'Sinks'),
      h('table', { class: 'list' }, h('thead', null, h('tr', null,
        ['Name', 'Type', 'Pending', 'Dead', 'Oldest due', 'State', ''].map((c) => h('th', null, c)))), tbody));
    const r = await track('Loading sinks', () => api('GET', 'sinks', 'read'));
    if (!r) return;
    for (const s of r.items) {
      const state = h('td', null, s.disabled ? badge('disabled', 'pending') : s.paused
        ? [badge('paused', 'dead'), ' ', s.paused_reason || '', s.paused_since ? [' since ', time(s.paused_since)] : null]
        : badge('active', 'ok'));
      let action = null;
      if (s.paused) {
        action = h('button', { type: 'button', class: 'resume', 'data-sink': s.name }, 'Resume');
        action.addEventListener('click', async () => {
          action.disabled = true;
          const ok = await track('Resume ' + s.name, () => api('POST', 'sinks/' + encodeURIComponent(s.name) + '/resume', 'replay'));
          if (ok) state.replaceChildren(badge('active', 'ok'));
          else action.disabled = false;
        });
      }
      tbody.append(h('tr', { 'data-sink': s.name },
        h('td', null, s.name),
        h('td', null, s.type),
        h('td', { class: 'num' }, s.pending),
        h('td', { class: 'num' }, s.dead ? h('a', { href: '#/dead?' + qs({ sink: s.name }) }, s.dead) : '0'),
        h('td', { class: 'num' }, s.oldest_due_seconds > 0 ? Math.round(s.oldest_due_seconds) + ' s' : '—'),
        state,
        h('td', null, action)));
    }
  }

  // --- silences ----------------------------------------------------------

  const silenceKinds = { active: 'pending', pending: 'muted', expired: 'muted' };
  const silenceStates = [['', 'any'], ['active', 'active'], ['pending', 'pending'], ['expired', 'expired']];
  const silenceDeniedText = 'This token lacks the silence scope: it can list silences, not create or expire them. ' +
    'Log in with a token that has the silence scope to do that.';

  // localToRFC3339 turns a datetime-local value (the browser's local time,
  // no zone) into the RFC 3339 time the API takes; '' stays ''.
  function localToRFC3339(v, what) {
    if (!v) return '';
    const t = new Date(v);
    if (isNaN(t.getTime())) throw new Error(what + ': not a date and time');
    return t.toISOString().replace(/\.\d+Z$/, 'Z');
  }

  // markMatcherError puts the cursor where the API says a matcher does not
  // compile ("matcher: line 1, column 6: ...", 1-based, in characters).
  function markMatcherError(input, message) {
    const m = /matcher: line (\d+), column (\d+):/.exec(message);
    if (!m && !/^matcher:/.test(message)) return;
    input.classList.add('invalid');
    input.setAttribute('aria-invalid', 'true');
    input.focus();
    if (m && m[1] === '1') {
      // Columns count characters; the input's offsets count UTF-16 units.
      const at = Array.from(input.value).slice(0, Number(m[2]) - 1).join('').length;
      input.setSelectionRange(at, at);
    }
  }

  function silencesView(params) {
    const filter = { state: params.state };
    const tbody = h('tbody');
    const empty = h('p', { class: 'empty', hidden: true }, 'No silences.');
    const formArea = h('div', { id: 'silence-new' });
    view.append(h('h2', null, 'Silences'),
      h('p', { class: 'hint' }, 'A silence mutes the deliveries its matcher selects while it is active: they are recorded as ',
        h('a', { href: '#/deliveries?' + qs({ status: 'silenced' }) }, 'silenced'),
        ', not sent, and can be replayed once it is over. Expiring a silence ends it now.'),
      filterForm('silences', [['state', 'State', silenceStates]], params),
      h('table', { class: 'list', id: 'silences' }, h('thead', null, h('tr', null,
        ['State', 'ID', 'Matcher', 'Comment', 'Created by', 'Starts', 'Ends', ''].map((c) => h('th', null, c)))), tbody),
      empty,
      h('h3', null, 'New silence'), formArea);

    // denied swaps the form, and every Expire button, for why they
    // cannot work with this token.
    const denied = () => {
      silenceDeniedTo = sessionStorage.getItem(TOKEN_KEY);
      formArea.replaceChildren(h('p', { class: 'message', id: 'silence-denied' }, silenceDeniedText));
      for (const b of tbody.querySelectorAll('button.expire')) b.remove();
    };

    const row = (s) => h('tr', { 'data-silence': s.id, class: s.id === params.id ? 'selected' : null },
      h('td', { class: 'state' }, badge(s.state, silenceKinds[s.state])),
      h('td', { class: 'id' }, s.id),
      h('td', null, h('code', { class: 'matcher' }, s.matcher)),
      h('td', null, s.comment || ''),
      h('td', null, s.created_by || ''),
      h('td', null, time(s.starts_at)),
      h('td', null, time(s.ends_at)),
      h('td', null, s.state !== 'expired' && !silenceDenied() ? expireButton(s) : null));

    const expireButton = (s) => {
      const btn = h('button', { type: 'button', class: 'expire danger', 'data-id': s.id }, 'Expire');
      btn.addEventListener('click', async () => {
        const label = 'Expire ' + s.id;
        if (!confirm('Expire silence ' + s.id + ' (' + s.matcher + ') now? What it matches is sent again from now on; ' +
          'the deliveries it already silenced stay silenced until replayed.')) {
          setStatus(label, 'idle', 'cancelled: the silence stays ' + s.state);
          return;
        }
        btn.disabled = true;
        setStatus(label, 'running');
        let cur;
        try {
          cur = await api('DELETE', 'silences/' + encodeURIComponent(s.id), 'silence');
        } catch (e) {
          setStatus(label, 'failed', e.message);
          btn.disabled = false;
          if (e.status === 403) denied();
          return;
        }
        setStatus(label, 'done', 'the silence is ' + cur.state + ' since ' + shortTime(cur.ends_at));
        const tr = tbody.querySelector('tr[data-silence="' + CSS.escape(s.id) + '"]');
        if (tr) tr.replaceWith(row(cur));
      });
      return btn;
    };

    const show = (s, first) => {
      if (first) tbody.prepend(row(s)); else tbody.append(row(s));
      empty.hidden = true;
    };

    const load = async () => {
      const r = await track('Loading silences', () => api('GET', 'silences?' + qs(filter), 'read'),
        (r) => r.items.length + ' shown');
      if (!r) return;
      for (const s of r.items) show(s, false);
      empty.hidden = r.items.length > 0;
      const sel = params.id && tbody.querySelector('tr[data-silence="' + CSS.escape(params.id) + '"]');
      if (sel) sel.scrollIntoView({ block: 'center' });
    };

    if (silenceDenied()) formArea.append(h('p', { class: 'message', id: 'silence-denied' }, silenceDeniedText));
    else formArea.append(silenceForm(denied, (s) => {
      if (!filter.state || filter.state === s.state) show(s, true);
    }));
    load();
  }

  // silenceForm builds the form that creates a silence. created gets the
  // new silence; denied is called when the token lacks the silence scope.
  function silenceForm(denied, created) {
    const matcher = h('input', { id: 'silence-matcher', name: 'matcher', type: 'text', required: true, spellcheck: 'false',
      autocomplete: 'off', placeholder: 'sink == "support-slack" && chat.rating == "sad"' });
    const duration = h('input', { id: 'silence-duration', name: 'duration', type: 'text', spellcheck: 'false', placeholder: '2h, 30m or 1d' });
    const endsAt = h('input', { id: 'silence-ends-at', name: 'ends_at', type: 'datetime-local' });
    const startsAt = h('input', { id: 'silence-starts-at', name: 'starts_at', type: 'datetime-local' });
    const comment = h('input', { id: 'silence-comment', name: 'comment', type: 'text', placeholder: 'why, e.g. the support bot is being redeployed' });
    const submit = h('button', { type: 'submit', id: 'silence-create' }, 'Create silence');
    const form = h('form', { id: 'silence-form', class: 'silence-form', method: 'post', autocomplete: 'off' },
      h('div', { class: 'row' }, h('label', { for: 'silence-matcher' }, 'Matcher'), matcher),
      h('div', { class: 'row' },
        h('label', null, 'For ', duration),
        h('label', null, 'or until ', endsAt),
        h('label', null, 'Starts ', startsAt, ' ', h('span', { class: 'hint' }, '(empty: now; times are your local time)'))),
      h('div', { class: 'row' }, h('label', { for: 'silence-comment' }, 'Comment'), comment),
      h('div', { class: 'row' }, submit,
        h('span', { class: 'hint' }, 'The matcher is an expression over the event, as a rule\'s when:, with rule, sink and source besides.')));
    matcher.addEventListener('input', () => {
      matcher.classList.remove('invalid');
      matcher.removeAttribute('aria-invalid');
    });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const label = 'Create silence';
      let body;
      try {
        // Empty fields are left out: the API says what is missing, in
        // the same words as for the CLI.
        body = { matcher: matcher.value, comment: comment.value.trim() };
        if (duration.value.trim()) body.duration = duration.value.trim();
        const ends = localToRFC3339(endsAt.value, 'Until');
        const starts = localToRFC3339(startsAt.value, 'Starts');
        if (ends) body.ends_at = ends;
        if (starts) body.starts_at = starts;
      } catch (e) {
        setStatus(label, 'failed', e.message);
        return;
      }
      submit.disabled = true;
      setStatus(label, 'running');
      let s;
      try {
        s = await api('POST', 'silences', 'silence', body);
      } catch (e) {
        submit.disabled = false;
        setStatus(label, 'failed', e.message);
        if (e.status === 403) denied();
        else markMatcherError(matcher, e.message);
        return;
      }
      submit.disabled = false;
      setStatus(label, 'done', 'silence ' + s.id + ' is ' + s.state + ' until ' + shortTime(s.ends_at));
      matcher.value = comment.value = '';
      created(s);
    });
    return form;
  }

  // --- timers ------------------------------------------------------------

  // sameView shows a timer's same: values, as JSON (a string "42" and a
  // number 42 are different values, and match different events): beside
  // their expressions when the API paired them with the running rule's.
  function sameView(t) {
    if (t.uncancellable) return h('span', { class: 'hint' }, 'none: unless.same failed on the event, so no event can cancel it');
    if (t.same && t.same.length) return t.same.map((s, i) => [i ? h('br') : null, h('code', null, s.expr), ' = ', h('code', null, JSON.stringify(s.value))]);
    return t.values.map((v, i) => [i ? ', ' : null, h('code', null, JSON.stringify(v))]);
  }

  // sameText is sameView for a question, in plain text.
  const sameText = (t) => (t.same && t.same.length ? t.same.map((s) => s.expr + ' = ' + JSON.stringify(s.value))
    : t.values.map((v) => JSON.stringify(v))).join(', ');

  function timersView(params) {
    const tbody = h('tbody');
    const empty = h('p', { class: 'empty', hidden: true }, 'No timers waiting.');
    view.append(h('h2', null, 'Timers'),
      h('p', { class: 'hint' }, 'A rule with unless: keeps its deliveries waiting: they are sent when the timer runs out, ' +
        'unless a later event matching its unless.when with the same values cancels them first. Cancelling a timer here ' +
        'does what that event would: its waiting deliveries are recorded as ',
        h('a', { href: '#/deliveries?' + qs({ status: 'cancelled' }) }, 'cancelled'), ' and never sent.'),
      h('table', { class: 'list', id: 'timers' }, h('thead', null, h('tr', null,
        ['Rule', 'Same values', 'Event', 'Started', 'Due', 'Waiting deliveries', ''].map((c) => h('th', null, c)))), tbody),
      empty);

    const row = (t) => h('tr', { 'data-timer': t.id, class: t.id === params.id ? 'selected' : null },
      h('td', null, t.rule),
      h('td', { class: 'same' }, sameView(t)),
      h('td', null, t.event || '—', h('br'), h('span', { class: 'id' }, link(t.event_id, 'event', t.source, t.event_id)), ' from ', t.source),
      h('td', null, time(t.started_at)),
      h('td', null, time(t.due_at)),
      h('td', null, h('ul', { class: 'timer-deliveries' }, t.deliveries.map((d) =>
        h('li', null, link(d.sink, 'delivery', d.id), ' at ', time(d.due_at))))),
      h('td', null, cancelButton(t)));

    const cancelButton = (t) => {
      const btn = h('button', { type: 'button', class: 'cancel-timer danger', 'data-id': t.id }, 'Cancel');
      btn.addEventListener('click', async () => {
        const label = 'Cancel timer ' + t.id;
        const sinks = t.deliveries.map((d) => d.sink).join(', ');
        if (!confirm('Cancel the timer of rule ' + t.rule + ' for ' + (sameText(t) || t.event_id) + '? Its ' + t.deliveries.length +
          ' waiting deliveries (' + sinks + ') are cancelled and never sent, as if the cancelling event had come.')) {
          setStatus(label, 'idle', 'not cancelled: the timer still waits');
          return;
        }
        btn.disabled = true;
        setStatus(label, 'running');
        let r;
        try {
          r = await api('DELETE', 'timers/' + encodeURIComponent(t.id), 'replay');
        } catch (e) {
          setStatus(label, 'failed', e.message);
          btn.disabled = false;
          // Gone meanwhile: it fired, or an event cancelled it.
          if (e.status === 404) {
            btn.closest('tr').remove();
            empty.hidden = tbody.children.length > 0;
          }
          return;
        }
        setStatus(label, 'done', r.cancelled + ' waiting deliveries cancelled');
        btn.closest('tr').remove();
        empty.hidden = tbody.children.length > 0;
      });
      return btn;
    };

    (async () => {
      const r = await track('Loading timers', () => api('GET', 'timers', 'read'), (r) => r.items.length + ' waiting');
      if (!r) return;
      for (const t of r.items) tbody.append(row(t));
      empty.hidden = r.items.length > 0;
      const sel = params.id && tbody.querySelector('tr[data-timer="' + CSS.escape(params.id) + '"]');
      if (sel) sel.scrollIntoView({ block: 'center' });
    })();
  }

  // --- trial run ---------------------------------------------------------

  async function trialView() {
    const sourceSel = h('select', { id: 'trial-source' });
    const eventSel = h('select', { id: 'trial-event' });
    const kind = h('span', { class: 'hint', id: 'trial-sample-kind' });
    const editor = h('textarea', { id: 'trial-editor', rows: 22, spellcheck: 'false', 'aria-label': 'Event payload (JSON)' });
    const dry = h('button', { type: 'button', id: 'trial-dry' }, 'Run dry');
    const send = h('button', { type: 'button', id: 'trial-send', class: 'danger' }, 'Send for real…');
    const result = h('div', { id: 'trial-result' });
    view.append(h('h2', null, 'Trial run'),
      h('p', { class: 'hint' }, 'Pick an event: a sample payload appears below. Edit it and run. A dry run shows which rules ' +
        'match, why the others do not, and the exact request each sink would receive; sending for real delivers it ' +
        '(not recorded in the delivery log).'),
      h('div', { class: 'row' }, h('label', null, 'Source ', sourceSel), h('label', null, 'Event ', eventSel), kind),
      editor, h('div', { class: 'row' }, dry, send), result);

    editor.addEventListener('input', () => editor.classList.remove('invalid'));
    const r = await track('Loading trial samples', () => api('GET', 'trial/samples', 'trial'),
      (s) => s.items.length + ' samples');
    const samples = (r && r.items) || [];
    let source = sourceSel;
    if (samples.length === 0) {
      // Without samples the trial still runs: type the source, paste an event.
      source = h('input', { id: 'trial-source', type: 'text', placeholder: 'source name', spellcheck: 'false' });
      sourceSel.replaceWith(source);
      eventSel.disabled = true;
      kind.textContent = 'no samples: type a source and paste an event';
    }
    const sources = [...new Set(samples.map((s) => s.source))];
    sourceSel.replaceChildren(...sources.map((s) => h('option', { value: s }, s)));
    const fillEvents = () => {
      eventSel.replaceChildren(...samples.map((s, i) => (s.source === sourceSel.value
        ? h('option', { value: i }, s.label || s.event) : null)).filter(Boolean));
      loadSample();
    };
    const loadSample = () => {
      const s = samples[eventSel.value];
      if (!s) return;
      editor.value = pretty(s.payload);
      editor.classList.remove('invalid');
      kind.textContent = (s.real ? 'from a real event received by this router' : 'a built-in example') + ' · ' + s.event;
    };
    sourceSel.addEventListener('change', fillEvents);
    eventSel.addEventListener('change', loadSample);
    fillEvents();

    const run = async (sendForReal) => {
      const label = sendForReal ? 'Trial run (send)' : 'Trial run (dry)';
      const raw = editor.value;
      try {
        JSON.parse(raw);
      } catch (e) {
        editor.classList.add('invalid');
        setStatus(label, 'failed', 'the event in the editor is not valid JSON (' + e.message + '); nothing was run');
        return;
      }
      if (!source.value.trim()) {
        setStatus(label, 'failed', 'pick a source first');
        return;
      }
      if (sendForReal && !confirm('Send this event for real to the sinks of every rule it matches? The deliveries are not recorded in the delivery log.')) {
        setStatus(label, 'idle', 'cancelled: nothing was sent');
        return;
      }
      dry.disabled = send.disabled = true;
      // The editor's text goes into the body as it is, so numbers beyond
      // 2^53 reach the router exactly as typed.
      const body = '{"source":' + JSON.stringify(source.value.trim()) + ',"send":' + sendForReal + ',"event":' + raw + '}';
      const t = await track(label, () => api('POST', 'trial', 'trial', body), (t) => {
        const n = (t.rules || []).filter((x) => x.matched).length;
        return n + ' of ' + (t.rules || []).length + ' rules match';
      });
      dry.disabled = send.disabled = false;
      if (t) {
        result.replaceChildren();
        add(result, trialResult(t));
      }
    };
    dry.addEventListener('click', () => run(false));
    send.addEventListener('click', () => run(true));
  }

  function trialResult(t) {
    const rules = t.rules || [];
    const routes = t.routes || [];
    const n = rules.filter((x) => x.matched).length;
    return [
      h('p', { class: 'summary' }, 'Event ', h('code', null, t.event_name || '—'), ' (id ', h('code', null, t.event_id || '—'),
        ') from ', t.source, ': ', n + ' of ' + rules.length + ' rules match; ',
        t.send ? 'sent for real.' : 'dry run, nothing was sent.'),
      h('h3', null, 'Rules'),
      rules.length ? table(['Rule', 'Result', 'Why'], rules.map((x) => h('tr', {
        'data-rule': x.name, class: x.error ? 'rule-error' : x.matched ? 'matched' : 'not-matched',
      },
      h('td', null, x.name),
      h('td', null, x.error ? badge('error', 'dead') : x.matched ? badge('matched', 'ok') : badge('not matched', 'muted')),
      h('td', null,
        h('ul', { class: 'explanation' }, (x.explanation || []).map((l) => h('li', null, l))),
        x.error ? h('p', { class: 'error' }, x.error) : null))), 'rules')
        : h('p', { class: 'empty' }, 'No rule applies to this source.'),
      h('h3', null, 'Routes'),
      routes.length ? routes.map((rt) => routeResult(rt, t.send)) : h('p', { class: 'empty' }, 'No route: no rule matched.'),
    ];
  }

  function routeResult(rt, sent) {
    const fields = Object.entries(rt.fields || {});
    return h('section', { class: 'route', 'data-rule': rt.rule, 'data-sink': rt.sink },
      h('h4', null, rt.rule, ' → ', rt.sink, ' ', h('span', { class: 'hint' }, '(' + rt.kind + ', route ' + rt.route + ')')),
      rt.error ? h('p', { class: 'error' }, 'Error: ' + rt.error) : null,
      rt.dedup_key ? h('p', null, 'Dedup key ', h('code', null, rt.dedup_key)) : null,
      rt.action ? h('p', { class: 'action' }, 'Would ', rt.action) : null,
      rt.schedule ? h('p', { class: 'schedule' }, rt.schedule.charAt(0).toUpperCase() + rt.schedule.slice(1)) : null,
      rt.outcome && rt.outcome !== 'sent' ? h('p', { class: 'outcome' }, 'Outcome: ', badge(rt.outcome, 'muted'), ' ', rt.why || '') : null,
      linksView(rt.links),
      rt.request ? requestView(rt.request) : (rt.error ? null : h('p', { class: 'hint' }, 'No request to show for this sink.')),
      fields.length ? [h('h5', null, 'Fields'), h('dl', { class: 'facts' },
        fields.map(([k, v]) => [h('dt', null, k), h('dd', null, h('pre', { class: 'inline' }, text(v)))]))] : null,
      rt.result ? resultView(rt.result) : sent && !rt.error ? h('p', { class: 'hint' }, 'Not sent.') : null);
  }

  // linksView lists what other sinks created for the route's dedup key,
  // as its templates see them under .links.
  function linksView(links) {
    const entries = Object.entries(links || {}).sort(([a], [b]) => a.localeCompare(b));
    if (!entries.length) return null;
    const rows = entries.map(([sink, l]) => {
      const url = l.url || '';
      const shown = safeURL(url) ? h('a', { href: url, rel: 'noopener noreferrer', target: '_blank' }, url) : text(url);
      return h('tr', { 'data-link': sink }, h('td', null, sink), h('td', null, h('code', null, l.id || '')), h('td', null, shown));
    });
    return [h('h5', null, 'Links'), table(['Sink', 'Id', 'Link'], rows, 'links')];
  }

  function safeURL(u) {
    return typeof u === 'string' && /^https?:\/\//i.test(u);
  }

  function requestView(req) {
    const headers = Object.entries(req.headers || {}).sort(([a], [b]) => a.localeCompare(b));
    let body = req.body || '';
    try {
      body = pretty(parseJSON(body));
    } catch (e) {
      // not JSON: shown as it is
    }
    return h('div', { class: 'request' },
      h('h5', null, 'Request'),
      h('p', null, h('code', null, req.method + ' ' + req.url)),
      headers.length ? table(['Header', 'Value'], headers.map(([k, v]) =>
        h('tr', null, h('td', null, k), h('td', null, Array.isArray(v) ? v.join(', ') : text(v)))), 'headers') : null,
      body ? h('pre', { class: 'json' }, body) : h('p', { class: 'hint' }, 'No body.'));
  }

  function resultView(res) {
    const ok = res.status_code >= 200 && res.status_code < 300 && !res.error;
    return h('div', { class: 'result' },
      h('h5', null, 'Result'),
      h('p', null, badge(ok ? 'sent' : 'failed', ok ? 'ok' : 'dead'),
        res.status_code ? ' HTTP ' + res.status_code : '',
        res.remote_id ? [' · remote id ', h('code', null, res.remote_id)] : null),
      res.error ? h('p', { class: 'error' }, res.error) : null);
  }

  route();
})();
