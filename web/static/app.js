// darkchat browser client: the page around the client core (darkchat.wasm,
// the same command interpreter as the CLI). The core connects, logs in,
// reconnects and formats every line; this file keeps the identity in
// localStorage, routes what is typed, and draws the conversation lists and
// the log.
//
// Hooks that automation relies on (SPEC §7): #input (Enter submits), #log
// (one element per output line, whose text is the line exactly as the CLI
// prints it), #pubkey (the public key) and body[data-state] ("ready" once
// logged in).
//
// Everything shown that comes from the network or from storage is inserted
// with textContent, never as HTML.
'use strict';

(() => {
  const KEY_STORAGE = 'darkchat.identity';
  const PREVIOUS_KEY_STORAGE = 'darkchat.identity.previous';
  const NAME_STORAGE = 'darkchat.username';
  const CHANNELS_STORAGE = 'darkchat.channels';
  const DMS_STORAGE = 'darkchat.dms';
  const UNLISTED_STORAGE = 'darkchat.unlisted';
  const MAX_DMS = 100;
  const CHANNEL_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
  const USERNAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;
  const MAX_LOG_LINES = 5000;
  const MAX_KEY_FILE = 4096;
  const HEX64 = /^[0-9a-f]{64}$/;

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $('status'),
    channels: $('channels'),
    channelsEmpty: $('channels-empty'),
    dms: $('dms'),
    dmsEmpty: $('dms-empty'),
    joinToggle: $('join-toggle'),
    joinForm: $('join-form'),
    dmToggle: $('dm-toggle'),
    dmForm: $('dm-form'),
    pubkey: $('pubkey'),
    meName: $('me-name'),
    copyPubkey: $('copy-pubkey'),
    identityOpen: $('identity-open'),
    title: $('conv-title'),
    sub: $('conv-sub'),
    filter: $('filter'),
    leave: $('leave'),
    banner: $('banner'),
    bannerText: $('banner-text'),
    bannerDetail: $('banner-detail'),
    retry: $('retry'),
    log: $('log'),
    members: $('members'),
    membersTitle: $('members-title'),
    membersList: $('members-list'),
    membersMore: $('members-more'),
    membersToggle: $('members-toggle'),
    composer: $('composer'),
    input: $('input'),
    dialog: $('identity'),
    idPubkey: $('identity-pubkey'),
    idText: $('identity-text'),
    idReveal: $('identity-reveal'),
    idCopy: $('identity-copy'),
    idDownload: $('identity-download'),
    importText: $('import-text'),
    importFile: $('import-file'),
    importApply: $('import-apply'),
    importError: $('import-error'),
    idClose: $('identity-close'),
    unlisted: $('unlisted'),
  };

  // What the page knows. Channels come from the core's state; DM
  // conversations from the lines seen.
  const S = {
    state: 'loading',
    pubkey: '',
    name: '',
    node: '',
    channels: new Map(), // name → username
    dms: new Map(), // peer key → {user, status}
    unread: new Map(), // conversation id → count
    current: null, // conversation id: "ch:<name>" or "dm:<key>"
    pending: new Map(), // peer key → own DM rows awaiting their status
    members: new Map(), // channel → {count, members: [{key, user}]} (the first 500 by name)
    membersOpen: false, // narrow screens: the member list is shown over the log
    ownLast: new Map(), // channel → the last echo of an own channel message, until it is sent
    ownRows: new Map(), // message ID → own channel message row (the newest MAX_LOG_LINES)
    seenEarly: new Map(), // message ID → seen news that came before its row had its ID
    retryAt: 0,
    detail: '',
    history: [],
    historyPos: 0,
    draft: '',
    restored: false, // the channels of the last visit were asked for
  };

  // ---- small helpers ----

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // keyParts shows a public key and the text after it. The key is all in
  // the text, drawn shortened (with a generated "…") until hovered.
  function keyParts(key, after) {
    const k = el('span', 'key', key);
    k.title = key;
    return [k, el('span', 'after-key', after)];
  }

  function shortKey(key) {
    return key.length > 16 ? key.slice(0, 8) + '…' + key.slice(-6) : key;
  }

  // A username's colour follows its author's key, as in the CLI: one
  // author keeps one colour whatever name they use.
  function colorFor(key) {
    if (!key) return '';
    const hue = parseInt(key.slice(0, 6), 16) % 360;
    return `hsl(${hue} 70% 70%)`;
  }

  function timeOf(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  }

  function storageGet(name) {
    try {
      return localStorage.getItem(name);
    } catch {
      return null;
    }
  }

  function storageSet(name, value) {
    try {
      localStorage.setItem(name, value);
      return true;
    } catch {
      return false;
    }
  }

  let toastTimer = 0;
  function toast(text) {
    let t = document.querySelector('.toast');
    if (!t) {
      t = el('div', 'toast');
      t.setAttribute('role', 'status');
      document.body.append(t);
    }
    t.textContent = text;
    t.classList.add('show');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => t.classList.remove('show'), 1800);
  }

  async function copyText(text, what) {
    try {
      await navigator.clipboard.writeText(text);
      toast(`${what} copied`);
    } catch {
      // No clipboard API (a page served over plain http to another
      // machine is not a secure context): select the text instead.
      toast('Press Ctrl+C to copy');
    }
  }

  function selectContents(node) {
    const range = document.createRange();
    range.selectNodeContents(node);
    const sel = getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  // ---- conversations ----

  function convOf(line) {
    if (line.kind !== 'message') return '';
    return line.peer ? 'dm:' + line.peer : 'ch:' + line.channel;
  }

  function select(conv) {
    S.current = conv;
    if (conv) S.unread.delete(conv);
    renderConvs();
    renderHeader();
    renderMembers();
    applyFilter();
  }

  // convItem wraps a conversation's button in its list item: unread badge,
  // selection on click, and the active mark.
  function convItem(conv, b) {
    addBadge(b, conv);
    b.addEventListener('click', () => {
      select(conv);
      ui.input.focus();
    });
    const li = el('li');
    if (conv === S.current) li.classList.add('active');
    li.append(b);
    return li;
  }

  function renderConvs() {
    ui.channels.replaceChildren();
    for (const name of [...S.channels.keys()].sort()) {
      const conv = 'ch:' + name;
      const b = el('button', 'conv');
      b.type = 'button';
      b.title = `#${name}, as ${S.channels.get(name)}`;
      b.append(el('span', 'conv-hash', '#'), el('span', 'conv-name', name));
      ui.channels.append(convItem(conv, b));
    }
    ui.channelsEmpty.hidden = S.channels.size > 0;

    ui.dms.replaceChildren();
    for (const [key, dm] of S.dms) {
      const conv = 'dm:' + key;
      const b = el('button', 'conv');
      b.type = 'button';
      b.title = key;
      const avatar = el('span', 'avatar', (dm.user || '?').slice(0, 1).toUpperCase());
      avatar.style.background = colorFor(key);
      const label = el('span', 'conv-label');
      label.append(el('span', 'conv-name', dm.user || shortKey(key)), el('span', 'conv-key', shortKey(key)));
      b.append(avatar, label);
      if (dm.status) b.append(el('span', 'dm-status ' + dm.status.replace(' ', '-'), dm.status === 'delivered' ? '✓' : dm.status === 'sending' ? '…' : '!'));
      ui.dms.append(convItem(conv, b));
    }
    ui.dmsEmpty.hidden = S.dms.size > 0;
    let unread = 0;
    for (const n of S.unread.values()) unread += n;
    document.title = unread ? `(${unread}) darkchat` : 'darkchat';
  }

  function addBadge(button, conv) {
    const n = S.unread.get(conv);
    if (n) button.append(el('span', 'badge', n > 99 ? '99+' : String(n)));
  }

  function renderHeader() {
    const conv = S.current;
    ui.leave.hidden = true;
    if (conv && conv.startsWith('ch:')) {
      const name = conv.slice(3);
      ui.title.textContent = '#' + name;
      const user = S.channels.get(name);
      ui.sub.textContent = user ? `you are ${user} here` : 'not joined';
      ui.leave.hidden = !user;
      ui.input.placeholder = `Message #${name}`;
    } else if (conv && conv.startsWith('dm:')) {
      const key = conv.slice(3);
      const dm = S.dms.get(key) || {};
      ui.title.textContent = dm.user || shortKey(key);
      ui.sub.textContent = `direct · end-to-end encrypted · ${shortKey(key)}`;
      ui.input.placeholder = `Message ${dm.user || shortKey(key)} (end-to-end encrypted)`;
    } else {
      ui.title.textContent = 'Welcome';
      ui.sub.textContent = S.channels.size ? 'pick a conversation' : 'join a channel to start';
      ui.input.placeholder = 'Type a command — try: join lobby yourname';
    }
    ui.filter.disabled = !conv;
  }

  // noteDM records a DM conversation, and keeps the list (keys and names,
  // not messages) in this browser.
  function noteDM(key, user) {
    const dm = S.dms.get(key) || { user: '', status: '' };
    const changed = !S.dms.has(key) || (user && user !== dm.user);
    if (user) dm.user = user;
    S.dms.set(key, dm);
    if (changed) {
      while (S.dms.size > MAX_DMS) S.dms.delete(S.dms.keys().next().value);
      storageSet(DMS_STORAGE, JSON.stringify([...S.dms].map(([k, d]) => [k, d.user])));
    }
    return dm;
  }

  function restoreDMs() {
    let saved;
    try {
      saved = JSON.parse(storageGet(DMS_STORAGE) || '[]');
    } catch {
      return;
    }
    if (!Array.isArray(saved)) return;
    for (const pair of saved.slice(-MAX_DMS)) {
      if (!Array.isArray(pair)) continue;
      const [key, user] = pair;
      if (typeof key === 'string' && HEX64.test(key)) {
        S.dms.set(key, { user: typeof user === 'string' && USERNAME_RE.test(user) ? user : '', status: '' });
      }
    }
  }

  // ---- the log ----

  function applyFilter() {
    const only = ui.filter.checked && S.current;
    for (const row of ui.log.children) {
      row.hidden = Boolean(only && row.dataset.conv && row.dataset.conv !== S.current);
    }
    scrollToEnd();
  }

  function atEnd() {
    return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 48;
  }

  function scrollToEnd() {
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  // renderLine builds one row; its text is exactly line.text.
  function renderLine(line) {
    const row = el('div', 'line ' + line.kind);
    row.dataset.time = timeOf(line.time);
    if (line.kind !== 'message') {
      row.textContent = line.text;
      // help's table lines are indented and padded for a terminal.
      if (line.text.startsWith('  ')) row.classList.add('mono');
      return row;
    }
    const conv = convOf(line);
    row.dataset.conv = conv;
    if (line.ts) {
      // The author's signed time, in the viewer's local time.
      row.dataset.time = timeOf(line.ts);
      row.title = new Date(line.ts).toLocaleString();
    }
    if (line.late) {
      // A message that answers a history request: shown with its
      // author's time, and marked, wherever it falls in the log.
      row.classList.add('late');
      row.dataset.time = timeOf(line.ts);
      row.title = 'Sent ' + new Date(line.ts).toLocaleString() + ', shown late (from the channel\'s history)';
      row.append(el('span', 'late-mark', line.mark || ''));
    }
    if (line.own) row.classList.add('own');
    if (line.peer) row.classList.add('dm');
    if (line.own && line.peer) {
      // The echo of a DM sent: "<name> → <recipient>: <message>".
      const user = el('span', 'user', line.user);
      user.style.color = colorFor(line.author);
      const to = el('span', 'where link', shortKey(line.peer));
      to.title = line.peer;
      to.addEventListener('click', () => select(conv));
      row.append(user, el('span', 'sep', ' → '), to, el('span', 'sep', ': '), el('span', 'body', line.body));
      if (row.textContent !== line.text) row.replaceChildren(line.text);
      return row;
    }
    const user = el('span', 'user', line.user);
    user.style.color = colorFor(line.author);
    user.title = line.author;
    if (!line.own && line.author) {
      user.classList.add('link');
      user.addEventListener('click', () => {
        noteDM(line.author, line.user);
        select('dm:' + line.author);
        ui.input.focus();
      });
    }
    const where = el('span', 'where link');
    if (line.peer) {
      // "@private(<key>)": the key is shown shortened, and is all there.
      where.append('@private(', ...keyParts(line.peer, ')'));
    } else {
      where.textContent = '@' + line.channel;
    }
    where.title = line.peer ? 'Reply privately' : 'Go to #' + line.channel;
    where.addEventListener('click', () => {
      select(conv);
      ui.input.focus();
    });
    if (line.action) {
      // "* alice@dev waves"
      row.classList.add('action');
      row.append(el('span', 'sep', '* '), user, where, el('span', 'sep', ' '), el('span', 'body', line.body));
    } else {
      row.append(user, where, el('span', 'sep', ' - '), el('span', 'body', line.body));
    }
    if (row.textContent !== line.text) {
      // The parts (and a late mark) always add up to the line; if a future core formats
      // differently, show its text as it is.
      row.replaceChildren(line.text);
    }
    return row;
  }

  function appendRow(row) {
    const stick = atEnd();
    if (ui.filter.checked && S.current && row.dataset.conv && row.dataset.conv !== S.current) row.hidden = true;
    ui.log.append(row);
    while (ui.log.childElementCount > MAX_LOG_LINES) ui.log.firstElementChild.remove();
    if (stick) scrollToEnd();
  }

  // localLine shows a line of the page's own (not from the core).
  function localLine(text, kind = 'notice') {
    appendRow(renderLine({ kind, text, time: Date.now() }));
  }

  const DM_STATUS = /^DM to ([0-9a-f]{64})\b.*?\b(not delivered|delivered)\b/;

  // markSeen shows under an own message how many members have seen it.
  function markSeen(row, count, by) {
    row.dataset.seen = String(count);
    row.title = 'Seen by ' + by.join(', ');
  }

  // ownNews takes the core's news about the user's channel messages: an
  // echo's message ID once sent, and who has seen a message.
  function ownNews(line) {
    if (line.kind === 'sent') {
      const row = S.ownLast.get(line.channel);
      S.ownLast.delete(line.channel);
      if (!row) return;
      row.dataset.id = line.id;
      S.ownRows.set(line.id, row);
      while (S.ownRows.size > MAX_LOG_LINES) S.ownRows.delete(S.ownRows.keys().next().value);
      const early = S.seenEarly.get(line.id);
      if (early) {
        S.seenEarly.delete(line.id);
        markSeen(row, early.count, early.by);
      }
      return;
    }
    const row = S.ownRows.get(line.id);
    if (row) {
      markSeen(row, line.count, line.by || []);
      return;
    }
    S.seenEarly.set(line.id, { count: line.count, by: line.by || [] });
    while (S.seenEarly.size > 256) S.seenEarly.delete(S.seenEarly.keys().next().value);
  }

  // renderMembers shows the current channel's members beside the log:
  // each name with its key's first 8 hex digits (two users may share a
  // name); a click opens a direct conversation.
  function renderMembers() {
    const conv = S.current;
    const ch = conv && conv.startsWith('ch:') ? conv.slice(3) : '';
    const info = ch ? S.members.get(ch) : null;
    ui.membersToggle.hidden = !info;
    ui.members.hidden = !info;
    ui.members.classList.toggle('open', S.membersOpen);
    ui.membersToggle.setAttribute('aria-expanded', String(S.membersOpen));
    if (!info) return;
    ui.membersToggle.textContent = `Members (${info.count})`;
    ui.membersTitle.textContent = `Members · ${info.count}`;
    ui.membersList.replaceChildren();
    for (const m of info.members) {
      if (!HEX64.test(m.key) || !USERNAME_RE.test(m.user)) continue;
      const b = el('button', 'member');
      b.type = 'button';
      b.title = m.key === S.pubkey ? 'You' : 'Message ' + m.user + ' privately (' + m.key + ')';
      const name = el('span', 'user', m.user);
      name.style.color = colorFor(m.key);
      b.append(name, el('span', 'fp', m.key.slice(0, 8)));
      if (m.key === S.pubkey) {
        b.classList.add('self');
        b.disabled = true;
      } else {
        b.addEventListener('click', () => {
          noteDM(m.key, m.user);
          S.membersOpen = false;
          select('dm:' + m.key);
          ui.input.focus();
        });
      }
      const li = el('li');
      li.append(b);
      ui.membersList.append(li);
    }
    const more = info.count - info.members.length;
    ui.membersMore.hidden = more <= 0;
    ui.membersMore.textContent = more > 0 ? `and ${more} more (type names)` : '';
  }

  function onLine(line) {
    if (line.kind === 'sent' || line.kind === 'seen') {
      ownNews(line);
      return;
    }
    if (line.kind === 'members') {
      if (!CHANNEL_RE.test(line.channel || '')) return;
      if (Array.isArray(line.members) && (line.members.length || line.count)) {
        S.members.set(line.channel, { count: line.count | 0, members: line.members });
      } else {
        S.members.delete(line.channel);
      }
      if (S.current === 'ch:' + line.channel) renderMembers();
      return;
    }
    if (line.kind === 'status') {
      S.detail = line.text;
      renderBanner();
      return;
    }
    const row = renderLine(line);
    appendRow(row);
    if (line.kind === 'message') {
      const conv = convOf(line);
      if (line.own && !line.peer) S.ownLast.set(line.channel, row);
      if (line.peer) {
        noteDM(line.peer, line.own ? '' : line.user);
        if (line.own) {
          row.dataset.status = 'sending';
          const rows = S.pending.get(line.peer) || [];
          rows.push(row);
          S.pending.set(line.peer, rows);
          S.dms.get(line.peer).status = 'sending';
        }
      }
      if (!line.own && conv !== S.current) S.unread.set(conv, (S.unread.get(conv) || 0) + 1);
      if (!S.current) select(conv);
      renderConvs();
      return;
    }
    const m = line.kind === 'notice' && DM_STATUS.exec(line.text);
    if (m) {
      const key = line.author || m[1];
      const status = m[2];
      row.classList.add('dmstatus', status.replace(' ', '-'));
      if (line.text.startsWith('DM to ' + m[1])) row.replaceChildren('DM to ', ...keyParts(m[1], line.text.slice(6 + m[1].length)));
      const rows = S.pending.get(key);
      const sent = rows && rows.shift();
      if (sent) sent.dataset.status = status.replace(' ', '-');
      noteDM(key, '').status = status;
      renderConvs();
    }
  }

  // ---- connection state ----

  let countdown = 0;
  function renderBanner() {
    clearInterval(countdown);
    const show = (text) => {
      ui.banner.hidden = false;
      ui.bannerText.textContent = text;
      ui.bannerDetail.textContent = S.detail.replace(/^ERROR: /, '');
    };
    switch (S.state) {
      case 'ready':
        ui.banner.hidden = true;
        S.detail = '';
        break;
      case 'reconnecting': {
        const tick = () => {
          const s = Math.max(0, Math.ceil((S.retryAt - Date.now()) / 1000));
          show(`Connection lost. Reconnecting in ${s} s…`);
        };
        tick();
        countdown = setInterval(tick, 250);
        break;
      }
      case 'offline':
        show('Disconnected. Type connect or press Retry.');
        break;
      case 'connecting':
        show('Connecting…');
        break;
      default:
        show('Loading…');
    }
    ui.retry.hidden = S.state !== 'reconnecting' && S.state !== 'offline';
  }

  const STATUS_TEXT = {
    loading: 'loading…',
    connecting: 'connecting…',
    ready: 'online',
    reconnecting: 'reconnecting…',
    offline: 'offline',
    failed: 'failed',
  };

  function setState(state) {
    S.state = state;
    document.body.dataset.state = state;
    ui.status.textContent = STATUS_TEXT[state] || state;
    ui.status.className = 'status ' + state;
    renderBanner();
  }

  function onState(st) {
    S.pubkey = st.pubkey;
    S.name = st.name;
    S.node = st.node;
    S.retryAt = Date.now() + st.retryIn;
    ui.pubkey.textContent = st.pubkey;
    ui.meName.textContent = st.name && st.name !== 'anonymous' ? 'DMs as ' + st.name : '';
    ui.status.title = st.node ? 'Connected via node ' + st.node : 'Connection';
    if (st.state === 'ready') {
      // While disconnected the list keeps the channels that will be
      // joined again; once ready it is what the node confirmed or was
      // asked.
      const before = new Set(S.channels.keys());
      S.channels = new Map(st.channels.map((c) => [c.name, c.username]));
      if (!S.restored) {
        S.restored = true;
        restoreChannels();
      } else {
        storageSet(CHANNELS_STORAGE, JSON.stringify([...S.channels]));
      }
      const added = [...S.channels.keys()].filter((name) => !before.has(name));
      if (added.length) {
        select('ch:' + added[added.length - 1]);
        storageSet(NAME_STORAGE, S.channels.get(added[added.length - 1]));
      } else if (S.current && S.current.startsWith('ch:') && !S.channels.has(S.current.slice(3))) {
        const next = [...S.channels.keys()].sort()[0];
        select(next ? 'ch:' + next : null);
      } else {
        renderConvs();
        renderHeader();
      }
    }
    setState(st.state);
  }

  // restoreChannels joins, after a reload, the channels the page was in.
  function restoreChannels() {
    let saved;
    try {
      saved = JSON.parse(storageGet(CHANNELS_STORAGE) || '[]');
    } catch {
      return;
    }
    if (!Array.isArray(saved)) return;
    for (const pair of saved.slice(0, 32)) {
      if (!Array.isArray(pair)) continue;
      const [name, user] = pair;
      if (CHANNEL_RE.test(name) && USERNAME_RE.test(user) && !S.channels.has(name)) {
        darkchat.exec(`join ${name} ${user}`);
      }
    }
  }

  // ---- input ----

  // route turns what was typed into a CLI line. Commands and
  // "<joined-channel> <message>" are passed as typed, exactly as the CLI
  // reads them; anything else is a message to the current conversation.
  function route(text) {
    const t = text.trim();
    const first = t.split(/\s+/, 1)[0];
    if (!S.current || darkchat.isCommand(first)) return text;
    const rest = t.slice(first.length).trim();
    if (rest && S.channels.has(first)) return text;
    if (S.current.startsWith('ch:')) return `${S.current.slice(3)} ${t}`;
    return `private ${S.current.slice(3)} ${t}`;
  }

  function submit() {
    const text = ui.input.value;
    if (!text.trim() || typeof darkchat === 'undefined') return;
    if (S.history[S.history.length - 1] !== text) S.history.push(text);
    if (S.history.length > 200) S.history.shift();
    S.historyPos = S.history.length;
    ui.input.value = '';
    // The line runs with the channel shown as the current one, so that
    // /part, /names and /me act on it (a DM shown: none).
    if (S.current) darkchat.exec(route(text), S.current.startsWith('ch:') ? S.current.slice(3) : '');
    else darkchat.exec(route(text));
  }

  ui.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.isComposing) {
      e.preventDefault();
      submit();
    } else if (e.key === 'ArrowUp' && S.historyPos > 0) {
      if (S.historyPos === S.history.length) S.draft = ui.input.value;
      ui.input.value = S.history[--S.historyPos];
      e.preventDefault();
    } else if (e.key === 'ArrowDown' && S.historyPos < S.history.length) {
      S.historyPos++;
      ui.input.value = S.historyPos === S.history.length ? S.draft : S.history[S.historyPos];
      e.preventDefault();
    }
  });
  ui.composer.addEventListener('submit', (e) => {
    e.preventDefault();
    submit();
    ui.input.focus();
  });

  function toggleForm(toggle, form) {
    const open = form.hidden;
    form.hidden = !open;
    toggle.setAttribute('aria-expanded', String(open));
    if (open) form.querySelector('input').focus();
  }
  ui.joinToggle.addEventListener('click', () => {
    const name = ui.joinForm.elements.username;
    if (!name.value) name.value = storageGet(NAME_STORAGE) || '';
    toggleForm(ui.joinToggle, ui.joinForm);
  });
  ui.joinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const f = ui.joinForm.elements;
    darkchat.exec(`join ${f.channel.value.trim()} ${f.username.value.trim()}`);
    f.channel.value = '';
    toggleForm(ui.joinToggle, ui.joinForm);
    ui.input.focus();
  });
  ui.dmToggle.addEventListener('click', () => toggleForm(ui.dmToggle, ui.dmForm));
  ui.dmForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const key = ui.dmForm.elements.key.value.trim().toLowerCase();
    if (!HEX64.test(key)) return;
    ui.dmForm.elements.key.value = '';
    toggleForm(ui.dmToggle, ui.dmForm);
    noteDM(key, '');
    select('dm:' + key);
    ui.input.focus();
  });
  ui.leave.addEventListener('click', () => {
    if (S.current && S.current.startsWith('ch:')) darkchat.exec('leave ' + S.current.slice(3));
  });
  ui.filter.addEventListener('change', applyFilter);
  ui.membersToggle.addEventListener('click', () => {
    S.membersOpen = !S.membersOpen;
    renderMembers();
  });
  ui.retry.addEventListener('click', () => {
    if (S.state === 'offline') darkchat.exec('connect');
    else darkchat.reconnect();
  });
  ui.pubkey.addEventListener('click', () => {
    selectContents(ui.pubkey);
    if (S.pubkey) copyText(S.pubkey, 'Address');
  });
  ui.copyPubkey.addEventListener('click', () => S.pubkey && copyText(S.pubkey, 'Address'));

  // ---- identity ----

  let keyText = '';

  // loadIdentity returns the key file kept in this browser, making one on
  // the first visit.
  function loadIdentity() {
    const stored = storageGet(KEY_STORAGE);
    if (stored) {
      const r = darkchat.parseKey(stored);
      if (!r.error) return { text: r.key, fresh: false };
      storageSet(PREVIOUS_KEY_STORAGE, stored);
      localLine(`ERROR: the identity stored in this browser is unreadable (${r.error}); it was set aside and a new one made`, 'error');
    }
    const text = darkchat.generateKey();
    if (typeof text !== 'string') throw new Error(text.error);
    const saved = storageSet(KEY_STORAGE, text);
    return { text, fresh: true, saved };
  }

  function openIdentity() {
    ui.idPubkey.textContent = S.pubkey;
    ui.idText.value = '';
    ui.idText.placeholder = 'Hidden: press Show, or copy or download it directly.';
    ui.idReveal.textContent = 'Show';
    ui.importText.value = '';
    ui.importError.textContent = '';
    ui.unlisted.checked = storageGet(UNLISTED_STORAGE) === '1';
    ui.dialog.showModal();
  }

  ui.identityOpen.addEventListener('click', openIdentity);
  ui.idClose.addEventListener('click', () => ui.dialog.close());
  ui.idReveal.addEventListener('click', () => {
    const shown = ui.idText.value !== '';
    ui.idText.value = shown ? '' : keyText;
    ui.idReveal.textContent = shown ? 'Show' : 'Hide';
  });
  ui.idCopy.addEventListener('click', () => copyText(keyText, 'Key file'));
  ui.idDownload.addEventListener('click', () => {
    const url = URL.createObjectURL(new Blob([keyText], { type: 'text/plain' }));
    const a = el('a');
    a.href = url;
    a.download = 'darkchat-identity.key';
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  });
  ui.importFile.addEventListener('change', async () => {
    const file = ui.importFile.files[0];
    if (!file) return;
    if (file.size > MAX_KEY_FILE) {
      ui.importError.textContent = `That file is ${file.size} bytes: a key file is under 100.`;
      return;
    }
    ui.importText.value = await file.text();
  });
  // Being listed is decided at login (each join's presence record), so a
  // change applies from a fresh start of the client.
  ui.unlisted.addEventListener('change', () => {
    if (!storageSet(UNLISTED_STORAGE, ui.unlisted.checked ? '1' : '0')) {
      ui.importError.textContent = 'This browser does not let the page store anything.';
      ui.unlisted.checked = !ui.unlisted.checked;
      return;
    }
    location.reload();
  });
  ui.importApply.addEventListener('click', () => {
    const r = darkchat.parseKey(ui.importText.value);
    if (r.error) {
      ui.importError.textContent = r.error;
      return;
    }
    if (r.pubkey === S.pubkey) {
      ui.importError.textContent = 'That is already your identity.';
      return;
    }
    // The identity being replaced is kept aside, in case it was not
    // exported.
    storageSet(PREVIOUS_KEY_STORAGE, keyText);
    if (!storageSet(KEY_STORAGE, r.key)) {
      ui.importError.textContent = 'This browser does not let the page store anything.';
      return;
    }
    location.reload();
  });

  // ---- start ----

  function fail(text) {
    setState('failed');
    ui.bannerText.textContent = text;
    ui.bannerDetail.textContent = '';
    ui.banner.hidden = false;
    ui.retry.hidden = true;
    localLine('ERROR: ' + text, 'error');
  }

  // fallbackNodes reads the other nodes this node's operator gave the page
  // to move to when this one is gone (darkchatd --web-fallback).
  async function fallbackNodes() {
    try {
      const r = await fetch('/nodes.json', { cache: 'no-cache' });
      if (!r.ok) throw new Error('HTTP ' + r.status);
      const j = await r.json();
      return Array.isArray(j.fallbacks) ? j.fallbacks.filter((u) => typeof u === 'string') : [];
    } catch (e) {
      localLine('ERROR: could not read the fallback nodes: ' + e.message + '; this page stays with this node', 'error');
      return [];
    }
  }

  function start(fallbacks) {
    let id;
    try {
      id = loadIdentity();
    } catch (e) {
      fail('could not create an identity: ' + e.message);
      return;
    }
    keyText = id.text;
    restoreDMs();
    renderConvs();
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
    setState('connecting');
    const unlisted = storageGet(UNLISTED_STORAGE) === '1';
    const r = darkchat.start({ url, fallbacks, keyText, unlisted, onLine, onState });
    if (r.error) {
      fail(r.error);
      return;
    }
    S.pubkey = r.pubkey;
    ui.pubkey.textContent = r.pubkey;
    if (id.fresh && id.saved) {
      localLine('A new identity was made for you and kept in this browser. Use Identity… to export it, to keep it safe or use it elsewhere.');
    } else if (id.fresh) {
      localLine('ERROR: this browser does not let the page store your identity: it lasts until you close the page. Use Identity… to export it.', 'error');
    }
    renderHeader();
    ui.input.focus();
  }

  async function boot() {
    renderHeader();
    setState('loading');
    if (typeof Go === 'undefined' || typeof WebAssembly === 'undefined') {
      fail('this browser cannot run darkchat (WebAssembly is not available)');
      return;
    }
    const ready = new Promise((resolve) => addEventListener('darkchat-ready', resolve, { once: true }));
    const go = new Go();
    const url = document.querySelector('meta[name="darkchat-wasm"]').content;
    try {
      const { instance } = await WebAssembly.instantiateStreaming(fetch(url), go.importObject);
      go.run(instance).then(() => fail('the client stopped'));
    } catch (e) {
      fail('could not load the client: ' + e.message);
      return;
    }
    const [fallbacks] = await Promise.all([fallbackNodes(), ready]);
    start(fallbacks);
  }

  boot();
})();
