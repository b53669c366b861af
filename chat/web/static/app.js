// Relais chat web app: login, room list, room view with history, composer,
// members, notifications. Speaks chat/PROTOCOL.md (WebSocket /chat/ws and
// REST /api/v1/chat/). No framework, no build step; CSP-clean (no inline
// script or style, DOM built with textContent only: no HTML injection).
import { t, errorText, apply, setLang, currentLang } from './i18n.js';
import { Connection } from './connection.js';

const $ = (id) => document.getElementById(id);
const PAGE = 50;

// state
const S = {
  me: null,              // {id, address, name}
  rooms: new Map(),      // id -> room (REST room object + client fields)
  current: null,         // room id
  notifications: [],     // newest first
  conn: null,
  pending: new Map(),    // clientId -> {room, body, el}
  typingTimers: new Map(),
  clientSeq: 0,
};

// --- helpers ---------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

async function api(path, opts = {}) {
  const init = { method: opts.method || 'GET', headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (opts.body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(opts.body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw Object.assign(new Error('network'), { code: 'network' });
  }
  if (res.status === 401 && path !== '/api/v1/session') {
    showLogin();
    throw Object.assign(new Error('unauthenticated'), { code: 'unauthenticated' });
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(data.message || res.statusText), { code: data.error || 'default', status: res.status });
  return data;
}

function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const sameDay = d.toDateString() === new Date().toDateString();
  const opts = sameDay ? { hour: '2-digit', minute: '2-digit' } : { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' };
  return d.toLocaleString(currentLang() === 'en' ? 'en-GB' : 'fr-FR', opts);
}

function displayName(name, address) { return name || address || '?'; }

function newClientId() { return `c-${Date.now().toString(36)}-${(++S.clientSeq).toString(36)}-${Math.random().toString(36).slice(2, 8)}`; }

// --- login -----------------------------------------------------------------

function showLogin(code) {
  if (S.conn) { S.conn.close(); S.conn = null; }
  $('app-view').hidden = true;
  $('login-view').hidden = false;
  document.title = 'Relais';
  if (code) {
    $('login-error').textContent = errorText(code);
    $('login-error').hidden = false;
  }
  $('login-address').focus();
}

async function login(ev) {
  ev.preventDefault();
  const form = ev.target;
  const btn = form.querySelector('button[type=submit]');
  btn.disabled = true;
  $('login-error').hidden = true;
  try {
    const res = await fetch('/login', {
      method: 'POST', credentials: 'same-origin',
      headers: { Accept: 'application/json' },
      body: new URLSearchParams(new FormData(form)),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw Object.assign(new Error(), { code: data.error || 'default' });
    form.reset();
    await start(data);
  } catch (e) {
    $('login-error').textContent = errorText(e.code || 'network');
    $('login-error').hidden = false;
    $('login-password').focus();
  } finally {
    btn.disabled = false;
  }
}

async function logout(ev) {
  ev.preventDefault();
  try { await fetch('/logout', { method: 'POST', credentials: 'same-origin', headers: { Accept: 'application/json' } }); } catch { /* shown as logged out anyway */ }
  S.rooms.clear(); S.current = null; S.notifications = [];
  $('room-list').replaceChildren(); $('message-list').replaceChildren();
  showLogin();
}

// --- start -----------------------------------------------------------------

async function start(me) {
  S.me = me;
  $('login-view').hidden = true;
  $('app-view').hidden = false;
  $('me').textContent = displayName(me.name, me.address);
  $('me').title = me.address;
  updatePermissionButton();
  await Promise.all([loadRooms(), loadNotifications()]);
  S.conn = new Connection({
    rooms: () => Object.fromEntries([...S.rooms.values()].map((r) => [r.id, r.lastSeq || 0])),
    onEvent: onEvent,
    onState: onConnState,
    onResync: onResync,
  });
  S.conn.open();
  route();
}

function onConnState(state) {
  $('conn-status').textContent = state === 'open' ? '' : t(state === 'connecting' ? 'connecting' : 'offline');
  if (state === 'open') {
    // Messages not acknowledged before the cut go again with the same
    // clientId: the server answers with the same seq (no duplicate).
    for (const [clientId, p] of S.pending) S.conn.send({ type: 'send', room: p.room, clientId, body: p.body });
  }
}

// --- rooms -----------------------------------------------------------------

async function loadRooms() {
  const data = await api('/api/v1/chat/rooms');
  const seen = new Set();
  for (const r of data.rooms || []) {
    seen.add(r.id);
    const old = S.rooms.get(r.id);
    S.rooms.set(r.id, Object.assign(old || { messages: new Map(), reads: new Map(), members: [], more: true, loaded: false }, r));
  }
  for (const id of [...S.rooms.keys()]) if (!seen.has(id)) S.rooms.delete(id);
  // Rooms new to this page (added by someone else): follow them from
  // their current seq; their history comes page by page on opening.
  const fresh = {};
  for (const r of S.rooms.values()) if (!r.followed) { r.followed = true; fresh[r.id] = r.lastSeq || 0; }
  if (S.conn && Object.keys(fresh).length) S.conn.subscribe(fresh);
  renderRooms();
}

function kindLabel(r) {
  return r.kind === 'patient' ? t('kindPatient') : r.kind === 'direct' ? t('kindDirect') : t('kindTeam');
}

function roomName(r) {
  if (r.name) return r.name;
  if (r.kind === 'patient') return r.patientName || t('kindPatient');
  return kindLabel(r);
}

function renderRooms() {
  const list = $('room-list');
  const rooms = [...S.rooms.values()].sort((a, b) => (b.activity || b.lastSeq || 0) - (a.activity || a.lastSeq || 0) || b.id - a.id);
  list.replaceChildren(...rooms.map((r) => {
    const unread = r.id === S.current ? 0 : r.unread || 0;
    const btn = el('button', { type: 'button', 'data-room': String(r.id), 'aria-current': r.id === S.current ? 'true' : 'false',
      onclick: () => openRoom(r.id) },
    el('span', { class: 'name' }, roomName(r), el('span', { class: 'kind', text: kindLabel(r) })),
    unread ? el('span', { class: 'badge', text: String(unread), 'aria-label': t('unread', unread) }) : null);
    return el('li', { class: unread ? 'unread' : '' }, btn);
  }));
  $('rooms-empty').hidden = rooms.length > 0;
  updateTitle();
}

function updateTitle() {
  let n = 0;
  for (const r of S.rooms.values()) if (r.id !== S.current || document.hidden) n += r.unread || 0;
  n += S.notifications.filter((x) => !x.read && x.kind === 'document').length;
  const cur = S.current && S.rooms.get(S.current);
  document.title = `${n ? `(${n}) ` : ''}${cur ? roomName(cur) + ' — ' : ''}Relais`;
}

async function openRoom(id, focus = true) {
  const r = S.rooms.get(id);
  if (!r) return;
  S.current = id;
  if (location.hash !== `#room=${id}`) history.replaceState(null, '', `#room=${id}`);
  $('room-placeholder').hidden = true;
  $('room-content').hidden = false;
  $('members-panel').hidden = false;
  $('app-view').classList.remove('no-members');
  $('room-title').textContent = roomName(r);
  $('room-subtitle').textContent = r.kind === 'patient' ? t('patient', r.patientName, r.patientIns) : r.kind === 'direct' ? t('direct') : t('team');
  $('message-list').replaceChildren();
  if (S.current) clearTyping(S.current);
  $('people-results').replaceChildren();
  $('people-input').value = '';
  renderRooms();
  if (!r.loaded) {
    try {
      const page = await api(`/api/v1/chat/rooms/${id}/messages?limit=${PAGE}`);
      for (const m of page.messages || []) addMessage(r, m);
      r.more = !!page.more;
      r.loaded = true;
    } catch (e) {
      if (e.code === 'not_found') return dropRoom(id);
      showComposerError(e.code);
    }
  }
  if (S.current !== id) return;
  renderMessages(r);
  loadDetails(r);
  scrollToBottom();
  markRead(r);
  if (focus) $('composer-input').focus();
}

async function loadDetails(r) {
  try {
    const d = await api(`/api/v1/chat/rooms/${r.id}`);
    Object.assign(r, d.room || {});
    r.members = d.members || [];
    r.reads = new Map((d.reads || []).map((x) => [x.account, x]));
    if (S.current === r.id) { renderMembers(r); renderReadMarkers(r); }
  } catch (e) {
    if (e.code === 'not_found') dropRoom(r.id);
  }
}

function dropRoom(id) {
  S.rooms.delete(id);
  if (S.current === id) {
    S.current = null;
    $('room-content').hidden = true;
    $('members-panel').hidden = true;
    $('app-view').classList.add('no-members');
    $('room-placeholder').hidden = false;
  }
  renderRooms();
}

// --- messages --------------------------------------------------------------

// addMessage records a message object (3.1) in the room; edit and delete
// events change their target and are not shown themselves.
function addMessage(r, m) {
  if (m.kind === 'edit' || m.kind === 'delete') return;
  r.messages.set(m.seq, m);
}

function bumpSeq(r, seq) {
  if (seq > (r.lastSeq || 0)) r.lastSeq = seq;
  r.activity = Date.now();
}

function renderMessages(r) {
  const seqs = [...r.messages.keys()].sort((a, b) => a - b);
  $('message-list').replaceChildren(...seqs.map((s) => messageItem(r.messages.get(s))));
  for (const p of S.pending.values()) if (p.room === r.id) $('message-list').append(p.el);
  $('history-status').textContent = r.more ? '' : t('historyStart');
  regroup();
  renderReadMarkers(r);
}

// regroup hides the sender line of a message that follows one of the same
// sender within five minutes.
function regroup() {
  let prev = null;
  for (const li of $('message-list').children) {
    const same = prev && li.dataset.sender && prev.dataset.sender === li.dataset.sender &&
      Number(li.dataset.time) - Number(prev.dataset.time) < 5 * 60 * 1000;
    li.classList.toggle('cont', !!same);
    prev = li;
  }
}

function messageItem(m, pending = false) {
  const mine = S.me && m.sender === S.me.id;
  const kind = m.kind || 'text';
  const li = el('li', { class: `msg ${kind}${mine ? ' mine' : ''}${m.deleted ? ' deleted' : ''}${pending ? ' pending' : ''}`,
    'data-seq': m.seq ? String(m.seq) : null, id: m.seq ? `m-${m.seq}` : null,
    'data-sender': kind === 'text' && m.sender ? String(m.sender) : null, 'data-time': m.created ? String(Date.parse(m.created)) : null });
  const bubble = el('div', { class: 'bubble' });
  if (kind === 'system') {
    bubble.append(el('p', { class: 'body', text: m.body }));
  } else {
    const who = m.sender ? displayName(m.senderName, m.senderAddress) : t('system');
    bubble.append(el('div', { class: 'meta' },
      el('span', { class: 'sender', text: who }),
      el('time', { datetime: m.created || '', text: pending ? t('sending') : fmtTime(m.created) }),
      m.edited && !m.deleted ? el('span', { text: `(${t('edited')})` }) : null));
    if (kind === 'document') {
      bubble.append(el('p', { class: 'doc-kind', text: t('newDocument') }));
      const docs = (m.attachments || []).filter((a) => a.kind === 'document');
      for (const a of docs) bubble.append(el('p', { class: 'doc-title', text: a.title || '' }));
      if (m.body) bubble.append(el('p', { class: 'body small muted', text: m.body }));
      for (const a of docs) bubble.append(el('a', { class: 'doc-link', href: a.link || `/documents/${a.document}`, text: t('openDocument') }));
    } else {
      bubble.append(el('p', { class: 'body', text: m.deleted ? t('deleted') : m.body }));
    }
  }
  li.append(bubble);
  return li;
}

// renderReadMarkers puts "read by ..." under the last message each other
// member has read (their marker, or the newest shown message below it).
function renderReadMarkers(r) {
  if (S.current !== r.id) return;
  for (const old of document.querySelectorAll('#message-list .read-by')) old.remove();
  const seqs = [...r.messages.keys()].sort((a, b) => a - b);
  if (!seqs.length) return;
  const at = new Map();
  for (const rd of r.reads.values()) {
    if (S.me && rd.account === S.me.id) continue;
    // Under the newest message they have read that they did not write
    // ("read by Lucas" under Lucas's own message says nothing).
    let target = null;
    for (const s of seqs) {
      if (s > rd.seq) break;
      const m = r.messages.get(s);
      if (m.sender !== rd.account && m.kind !== 'system') target = s;
    }
    if (target == null) continue;
    const member = r.members.find((m) => m.account === rd.account);
    const name = displayName(member && member.name, rd.address || (member && member.address));
    if (!at.has(target)) at.set(target, []);
    at.get(target).push(name);
  }
  for (const [seq, names] of at) {
    const li = document.getElementById(`m-${seq}`);
    if (li) li.append(el('p', { class: 'read-by', text: t('readBy', names.join(', ')) }));
  }
}

function scrollToBottom() {
  const box = $('messages');
  box.scrollTop = box.scrollHeight;
}

function nearBottom() {
  const box = $('messages');
  return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
}

let readTimer = null;
function markRead(r) {
  if (document.hidden || S.current !== r.id) return;
  r.unread = 0;
  renderRooms();
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    const seq = r.lastSeq || 0;
    if (seq > (r.sentRead || 0) && S.conn) {
      r.sentRead = seq;
      S.conn.send({ type: 'read', room: r.id, seq });
    }
  }, 300);
}

// Infinite scroll upward: when the top sentinel shows, load the page
// before the oldest message held and keep the view where it was.
let loadingOlder = false;
async function loadOlder() {
  const r = S.rooms.get(S.current);
  if (!r || !r.loaded || !r.more || loadingOlder) return;
  const oldest = Math.min(...r.messages.keys());
  if (!isFinite(oldest)) return;
  loadingOlder = true;
  $('history-status').textContent = t('loadingOlder');
  try {
    const page = await api(`/api/v1/chat/rooms/${r.id}/messages?before=${oldest}&limit=${PAGE}`);
    if (S.current !== r.id) return;
    const box = $('messages');
    const fromBottom = box.scrollHeight - box.scrollTop;
    for (const m of page.messages || []) addMessage(r, m);
    r.more = !!page.more && (page.messages || []).length > 0;
    renderMessages(r);
    box.scrollTop = box.scrollHeight - fromBottom;
  } catch (e) {
    showComposerError(e.code);
  } finally {
    loadingOlder = false;
  }
}

// --- composer --------------------------------------------------------------

function sendMessage(ev) {
  ev.preventDefault();
  const input = $('composer-input');
  const body = input.value.trim();
  const r = S.rooms.get(S.current);
  if (!body || !r) return;
  if (new TextEncoder().encode(body).length > 16384) return showComposerError('too_large');
  $('composer-error').hidden = true;
  const clientId = newClientId();
  const p = { room: r.id, body, el: messageItem({ sender: S.me.id, senderAddress: S.me.address, senderName: S.me.name, body }, true) };
  S.pending.set(clientId, p);
  $('message-list').append(p.el);
  scrollToBottom();
  input.value = '';
  S.conn.send({ type: 'send', id: clientId, room: r.id, clientId, body });
}

function showComposerError(code) {
  $('composer-error').textContent = errorText(code);
  $('composer-error').hidden = false;
}

let lastTyping = 0;
function onComposerInput() {
  const now = Date.now();
  if (S.current && now - lastTyping > 3000 && S.conn) {
    lastTyping = now;
    S.conn.send({ type: 'typing', room: S.current });
  }
}

// --- members and directory search -------------------------------------------

function renderMembers(r) {
  $('member-list').replaceChildren(...r.members.map((m) => el('li', {},
    el('span', { text: displayName(m.name, m.address) + (S.me && m.account === S.me.id ? ` (${t('you')})` : '') + (m.role === 'owner' ? ` · ${t('owner')}` : '') }),
    el('span', { class: 'addr', text: m.address }))));
  const iAmOwner = r.members.some((m) => S.me && m.account === S.me.id && m.role === 'owner');
  $('people-form').hidden = !iAmOwner || r.kind === 'direct';
}

let searchTimer = null, searchGen = 0;
function onPeopleInput() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(searchPeople, 200);
}

async function searchPeople() {
  const q = $('people-input').value.trim();
  const gen = ++searchGen;
  if (q.length < 2) { $('people-results').replaceChildren(); return; }
  try {
    const data = await api(`/api/v1/chat/people?q=${encodeURIComponent(q)}&limit=10`);
    if (gen !== searchGen) return;
    const r = S.rooms.get(S.current);
    const people = data.people || [];
    if (!people.length) { $('people-results').replaceChildren(el('li', { class: 'muted', text: t('noResults') })); return; }
    $('people-results').replaceChildren(...people.map((p) => {
      const already = r && r.members.some((m) => m.address.toLowerCase() === p.address.toLowerCase());
      return el('li', {},
        el('span', {}, displayName(p.name, p.address), el('span', { class: 'addr', text: p.local ? p.address : `${p.address} · ${t('notLocal')}` })),
        p.local && !already ? el('button', { type: 'button', class: 'small', 'aria-label': `${t('add')} ${displayName(p.name, p.address)}`, text: t('add'),
          onclick: () => addMember(p) }) : null);
    }));
  } catch (e) {
    if (gen === searchGen) $('people-results').replaceChildren(el('li', { class: 'error', text: errorText(e.code) }));
  }
}

async function addMember(p) {
  const r = S.rooms.get(S.current);
  if (!r) return;
  try {
    await api(`/api/v1/chat/rooms/${r.id}/members`, { method: 'POST', body: { address: p.address, role: 'member' } });
    $('people-results').replaceChildren(el('li', { class: 'muted', role: 'status', text: t('added', displayName(p.name, p.address)) }));
    $('people-input').value = '';
    await loadDetails(r);
    $('people-input').focus();
  } catch (e) {
    $('people-results').replaceChildren(el('li', { class: 'error', text: errorText(e.code) }));
  }
}

// --- new room --------------------------------------------------------------

function openNewRoom() {
  $('new-room-form').reset();
  $('new-room-error').hidden = true;
  syncKind();
  $('new-room-dialog').showModal();
  $('room-name').focus();
}

function syncKind() {
  const patient = $('new-room-form').elements.kind.value === 'patient';
  $('patient-fields').hidden = !patient;
}

async function createRoom(ev) {
  ev.preventDefault();
  const f = $('new-room-form').elements;
  const body = { kind: f.kind.value, name: f.name.value.trim() };
  if (body.kind === 'patient') { body.patientName = f.patientName.value.trim(); body.patientIns = f.patientIns.value.trim(); }
  if (!body.name) { $('room-name').focus(); return; }
  try {
    const r = await api('/api/v1/chat/rooms', { method: 'POST', body });
    S.rooms.set(r.id, Object.assign({ messages: new Map(), reads: new Map(), members: [], more: true, loaded: false, activity: Date.now(), followed: true }, r));
    $('new-room-dialog').close();
    S.conn.subscribe({ [r.id]: r.lastSeq || 0 });
    await openRoom(r.id, false);
    $('people-input').focus();
  } catch (e) {
    $('new-room-error').textContent = errorText(e.code);
    $('new-room-error').hidden = false;
  }
}

// --- notifications -----------------------------------------------------------

async function loadNotifications() {
  try {
    const data = await api('/api/v1/chat/notifications?limit=50');
    S.notifications = (data.notifications || []).sort((a, b) => b.id - a.id);
    renderNotifications();
  } catch { /* the panel stays empty; the WebSocket brings new ones */ }
}

function renderNotifications() {
  const unread = S.notifications.filter((n) => !n.read).length;
  $('notif-count').textContent = String(unread);
  $('notif-count').hidden = unread === 0;
  $('notif-button').setAttribute('aria-label', `${t('notifications')}${unread ? ', ' + t('unread', unread) : ''}`);
  $('notif-empty').hidden = S.notifications.length > 0;
  $('notif-list').replaceChildren(...S.notifications.map((n) => el('li', { class: n.read ? '' : 'unread' },
    el('a', { href: n.link || (n.room ? `#room=${n.room}` : '#'), text: n.text || t('newDocument') }),
    n.room && n.kind === 'document' ? el('a', { class: 'small', href: `#room=${n.room}`, text: ` · ${t('openRoom')}` }) : null,
    el('time', { datetime: n.created || '', text: fmtTime(n.created) }))));
  updateTitle();
}

async function toggleNotifications() {
  const panel = $('notif-panel');
  panel.hidden = !panel.hidden;
  $('notif-button').setAttribute('aria-expanded', String(!panel.hidden));
  if (!panel.hidden) {
    const top = S.notifications[0];
    if (top && S.notifications.some((n) => !n.read)) {
      try { await api('/api/v1/chat/notifications/read', { method: 'POST', body: { upTo: top.id } }); } catch { return; }
      for (const n of S.notifications) n.read = true;
      renderNotifications();
    }
  }
}

function updatePermissionButton() {
  $('notif-permission').hidden = !('Notification' in window) || Notification.permission !== 'default';
}

async function askPermission() {
  try { await Notification.requestPermission(); } catch { /* older browsers: callback form, ignored */ }
  updatePermissionButton();
}

// browserNotify uses the Notification API (when allowed) while the page
// is hidden or the room is not the one shown.
function browserNotify(title, body, roomId) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  if (!document.hidden && roomId === S.current) return;
  try {
    const n = new Notification(title, { body, tag: roomId ? `room-${roomId}` : undefined });
    n.onclick = () => { window.focus(); if (roomId) openRoom(roomId); n.close(); };
  } catch { /* some platforms need a service worker: ignore */ }
}

// --- events from the server ------------------------------------------------

function onEvent(f) {
  switch (f.type) {
    case 'welcome':
      if (f.account) S.me = Object.assign(S.me || {}, f.account);
      break;
    case 'message': return onMessage(f);
    case 'edit':
    case 'delete': {
      const r = S.rooms.get(f.room);
      if (!r) return;
      bumpSeq(r, f.seq);
      if (f.message) r.messages.set(f.target, f.message);
      if (S.current === r.id) {
        const old = document.getElementById(`m-${f.target}`);
        if (old && f.message) old.replaceWith(messageItem(f.message));
        renderReadMarkers(r);
      }
      return;
    }
    case 'read': {
      const r = S.rooms.get(f.room);
      if (!r) return;
      const prev = r.reads.get(f.account);
      if (!prev || f.seq > prev.seq) r.reads.set(f.account, { account: f.account, address: f.address, seq: f.seq });
      renderReadMarkers(r);
      return;
    }
    case 'member': return onMember(f);
    case 'typing': return onTyping(f);
    case 'notification': {
      const n = f.notification;
      if (!n || S.notifications.some((x) => x.id === n.id)) return;
      S.notifications.unshift(n);
      renderNotifications();
      browserNotify(t('newDocument'), n.text || '', n.room);
      if (n.room && !S.rooms.has(n.room)) loadRooms().catch(() => {});
      return;
    }
    case 'ack': {
      const p = S.pending.get(f.clientId);
      if (p) p.el.classList.add('acked');
      return;
    }
    case 'error': return onError(f);
    default:
  }
}

function onMessage(f) {
  const m = f.message;
  let r = S.rooms.get(f.room);
  if (!r || !m) { loadRooms().catch(() => {}); return; }
  bumpSeq(r, f.seq);
  addMessage(r, m);
  const p = m.clientId && S.pending.get(m.clientId);
  if (p) { S.pending.delete(m.clientId); p.el.remove(); }
  const mine = S.me && m.sender === S.me.id;
  if (S.current === r.id && m.sender && S.typingFrom === m.sender) clearTyping(r.id);
  if (S.current === r.id) {
    const stick = mine || nearBottom();
    const list = $('message-list');
    const next = [...list.children].find((li) => li.dataset.seq && Number(li.dataset.seq) > m.seq);
    const item = messageItem(m);
    if (!document.getElementById(`m-${m.seq}`)) list.insertBefore(item, next || firstPending(list));
    regroup();
    renderReadMarkers(r);
    if (stick) scrollToBottom();
    markRead(r);
    if (!mine && document.hidden) { r.unread = (r.unread || 0) + 1; updateTitle(); }
  } else if (!mine) {
    r.unread = (r.unread || 0) + 1;
  }
  renderRooms();
  if (!mine) browserNotify(roomName(r), m.kind === 'document' ? t('newDocument') : `${displayName(m.senderName, m.senderAddress)}: ${m.body || ''}`.slice(0, 140), r.id);
}

function firstPending(list) { return [...list.children].find((li) => li.classList.contains('pending')) || null; }

function onMember(f) {
  const r = S.rooms.get(f.room);
  if (S.me && f.account === S.me.id) {
    if (f.action === 'removed') return dropRoom(f.room);
    if (!r) { loadRooms().catch(() => {}); return; }
  }
  if (!r) return;
  bumpSeq(r, f.seq);
  if (S.current === r.id) loadDetails(r);
}

function onTyping(f) {
  if (f.room !== S.current || (S.me && f.account === S.me.id)) return;
  const r = S.rooms.get(f.room);
  const member = r && r.members.find((m) => m.account === f.account);
  $('typing').textContent = t('typing', displayName(member && member.name, f.address));
  S.typingFrom = f.account;
  clearTimeout(S.typingTimers.get(f.room));
  S.typingTimers.set(f.room, setTimeout(() => clearTyping(f.room), 5000));
}

function clearTyping(room) {
  clearTimeout(S.typingTimers.get(room));
  S.typingFrom = null;
  $('typing').textContent = '';
}

function onError(f) {
  if (f.code === 'not_found' && f.room) { dropRoom(f.room); return; }
  const p = f.ref && S.pending.get(f.ref);
  if (p && f.code !== 'rate_limited' && f.code !== 'internal') {
    // A definitive refusal: the message will not be retried.
    S.pending.delete(f.ref);
    p.el.remove();
  }
  showComposerError(f.code);
}

async function onResync(roomId) {
  // The gap was too large to replay: drop the cache, reload the newest page.
  const r = S.rooms.get(roomId);
  if (!r) return;
  r.messages.clear(); r.loaded = false; r.more = true;
  try {
    const page = await api(`/api/v1/chat/rooms/${roomId}/messages?limit=${PAGE}`);
    for (const m of page.messages || []) addMessage(r, m);
    r.more = !!page.more; r.loaded = true;
    const newest = Math.max(0, ...r.messages.keys());
    r.lastSeq = Math.max(newest, r.lastSeq || 0);
    S.conn.subscribe({ [roomId]: newest });
    if (S.current === roomId) { renderMessages(r); scrollToBottom(); }
  } catch (e) {
    if (e.code === 'not_found') dropRoom(roomId);
  }
}

// --- routing (#room=12&seq=40) -------------------------------------------------

function route() {
  const params = new URLSearchParams(location.hash.slice(1));
  const id = Number(params.get('room'));
  if (id && S.rooms.has(id) && id !== S.current) openRoom(id);
}

// --- boot --------------------------------------------------------------------

function bind() {
  apply(document);
  for (const b of document.querySelectorAll('.lang-toggle')) b.addEventListener('click', () => {
    setLang(currentLang() === 'fr' ? 'en' : 'fr');
    if (S.current) clearTyping(S.current);
    renderRooms(); renderNotifications();
    const r = S.rooms.get(S.current);
    if (r) { $('room-subtitle').textContent = r.kind === 'patient' ? t('patient', r.patientName, r.patientIns) : r.kind === 'direct' ? t('direct') : t('team'); renderMessages(r); renderMembers(r); }
  });
  $('login-form').addEventListener('submit', login);
  $('logout-form').addEventListener('submit', logout);
  $('composer').addEventListener('submit', sendMessage);
  $('composer-input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); $('composer').requestSubmit(); }
  });
  $('composer-input').addEventListener('input', onComposerInput);
  $('people-input').addEventListener('input', onPeopleInput);
  $('people-form').addEventListener('submit', (e) => { e.preventDefault(); searchPeople(); });
  $('new-room-button').addEventListener('click', openNewRoom);
  $('new-room-cancel').addEventListener('click', () => $('new-room-dialog').close());
  $('new-room-form').addEventListener('submit', createRoom);
  $('new-room-form').addEventListener('change', syncKind);
  $('notif-button').addEventListener('click', toggleNotifications);
  $('notif-permission').addEventListener('click', askPermission);
  $('members-toggle').addEventListener('click', () => {
    const hidden = !$('members-panel').hidden;
    $('members-panel').hidden = hidden;
    $('app-view').classList.toggle('no-members', hidden);
    $('members-toggle').setAttribute('aria-expanded', String(!hidden));
  });
  document.addEventListener('click', (e) => {
    if (!$('notif-panel').hidden && !$('notif-panel').contains(e.target) && !$('notif-button').contains(e.target)) toggleNotifications();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !$('notif-panel').hidden) { toggleNotifications(); $('notif-button').focus(); }
  });
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => {
    const r = S.rooms.get(S.current);
    if (r && !document.hidden) markRead(r);
    updateTitle();
  });
  // Near the top: load older messages (the observer, and scroll events as
  // a fallback for when the sentinel stays in view between two pages).
  $('messages').addEventListener('scroll', () => { if ($('messages').scrollTop < 200) loadOlder(); }, { passive: true });
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadOlder();
  }, { root: $('messages'), rootMargin: '200px 0px 0px 0px' }).observe($('history-sentinel'));
}

async function boot() {
  bind();
  const err = new URLSearchParams(location.search).get('error');
  try {
    const me = await api('/api/v1/session');
    await start(me);
  } catch (e) {
    showLogin(err || (e.code === 'unauthenticated' || e.status === 401 ? null : e.code));
  }
}

boot();
