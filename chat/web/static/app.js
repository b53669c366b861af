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
  compose: null,         // {mode: 'reply'|'edit', seq} for the composer
  mentions: new Map(),   // account id -> name picked with @ in the composer
  ops: new Set(),        // frame ids of edits and deletes awaiting their ack
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
    for (const p of S.pending.values()) S.conn.send(p.frame);
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
  if (r.kind === 'direct' && r.peer) return displayName(r.peer.name, r.peer.address);
  if (r.kind === 'patient') return r.patientName || t('kindPatient');
  return kindLabel(r);
}

function roomSubtitle(r) {
  if (r.kind === 'patient') return t('patient', r.patientName, r.patientIns);
  if (r.kind === 'direct') return r.peer ? `${t('direct')} · ${r.peer.address}` : t('direct');
  return t('team');
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
  $('room-subtitle').textContent = roomSubtitle(r);
  $('message-list').replaceChildren();
  setCompose(null);
  closeMention();
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
  const forMe = S.me && !mine && (m.mentions || []).includes(S.me.id);
  const li = el('li', { class: `msg ${kind}${mine ? ' mine' : ''}${m.deleted ? ' deleted' : ''}${pending ? ' pending' : ''}${forMe ? ' mention-me' : ''}`,
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
      m.edited && !m.deleted ? el('span', { class: 'edited', text: `(${t('edited')})` }) : null,
      forMe ? el('span', { class: 'mention-tag', text: t('mentionsYou') }) : null));
    if (kind === 'document') {
      bubble.append(el('p', { class: 'doc-kind', text: t('newDocument') }));
      const docs = (m.attachments || []).filter((a) => a.kind === 'document');
      for (const a of docs) bubble.append(el('p', { class: 'doc-title', text: a.title || '' }));
      if (m.body) bubble.append(el('p', { class: 'body small muted', text: m.body }));
      for (const a of docs) bubble.append(el('a', { class: 'doc-link', href: a.link || `/documents/${a.document}`, text: t('openDocument') }));
    } else {
      if (m.replyTo && !m.deleted) bubble.append(quoteOf(m));
      bubble.append(m.deleted ? el('p', { class: 'body', text: t('deleted') }) : bodyOf(m));
    }
  }
  li.append(bubble);
  if (kind === 'text' && !pending && m.seq) li.append(messageActions(m, mine));
  return li;
}

// bodyOf shows a text body with the "@Name" of its mentions in bold.
function bodyOf(m) {
  const p = el('p', { class: 'body' });
  const r = S.rooms.get(m.room || S.current);
  const names = (m.mentions || []).map((id) => {
    const x = r && r.members.find((mb) => mb.account === id);
    return x ? displayName(x.name, x.address) : (S.me && id === S.me.id ? displayName(S.me.name, S.me.address) : null);
  }).filter(Boolean);
  if (!names.length) { p.textContent = m.body; return p; }
  const re = new RegExp(`(@(?:${names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')}))`);
  for (const [i, part] of m.body.split(re).entries()) if (part) p.append(i % 2 ? el('strong', { class: 'mention', text: part }) : part);
  return p;
}

function excerpt(text, n = 90) {
  const s = (text || '').replace(/\s+/g, ' ').trim();
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

// quoteOf shows the message m replies to (from the cache; a message older
// than the pages loaded is named only), as a button that goes to it.
function quoteOf(m) {
  const r = S.rooms.get(m.room || S.current);
  const q = r && r.messages.get(m.replyTo);
  const who = q ? (q.sender ? displayName(q.senderName, q.senderAddress) : t('system')) : t('earlierMessage');
  return el('button', { type: 'button', class: 'quote', onclick: () => jumpTo(m.room || S.current, m.replyTo) },
    el('span', { class: 'visually-hidden', text: `${t('inReplyTo')} ` }),
    el('span', { class: 'quote-who', text: who }),
    q ? el('span', { class: 'quote-text', text: q.deleted ? t('deleted') : excerpt(q.body) }) : null);
}

// messageActions: reply; edit (own text); delete (own, or the room's
// owner); the versions of an edited or deleted message (medical record).
function messageActions(m, mine) {
  const r = S.rooms.get(m.room || S.current);
  const who = displayName(m.senderName, m.senderAddress);
  // An owner may delete others' messages; not in a direct room, where the
  // server makes both people owners.
  const owner = r && r.role === 'owner' && r.kind !== 'direct';
  const box = el('div', { class: 'actions', role: 'group', 'aria-label': t('actionsFor', who) });
  if (!m.deleted) {
    box.append(el('button', { type: 'button', class: 'ghost small', 'data-action': 'reply', text: t('reply'), 'aria-label': t('replyTo', who),
      onclick: () => { setCompose({ mode: 'reply', seq: m.seq }); $('composer-input').focus(); } }));
    if (mine) box.append(el('button', { type: 'button', class: 'ghost small', 'data-action': 'edit', text: t('edit'), onclick: () => startEdit(m) }));
    if (mine || owner) box.append(el('button', { type: 'button', class: 'ghost small', 'data-action': 'delete', text: t('delete'), onclick: () => deleteMessage(m) }));
  }
  if (m.edited || m.deleted) {
    box.append(el('button', { type: 'button', class: 'ghost small', 'data-action': 'versions', 'aria-expanded': 'false', text: t('versions'),
      onclick: (e) => toggleVersions(m, e.currentTarget) }));
  }
  return box;
}

async function toggleVersions(m, btn) {
  const li = btn.closest('li');
  const open = li.querySelector('.versions');
  if (open) { open.remove(); btn.setAttribute('aria-expanded', 'false'); return; }
  try {
    const data = await api(`/api/v1/chat/rooms/${m.room || S.current}/messages/${m.seq}/history`);
    const kinds = t('versionKinds');
    li.insertBefore(el('ol', { class: 'versions small' }, ...(data.versions || []).map((v) => el('li', {},
      el('span', { class: 'muted', text: `${kinds[v.kind] || v.kind} · ${fmtTime(v.time)} · ${displayName(v.senderName, v.senderAddress)}` }),
      v.body ? el('span', { class: 'version-body', text: v.body }) : null))), btn.parentElement);
    btn.setAttribute('aria-expanded', 'true');
  } catch (e) {
    showComposerError(e.code);
  }
}

// --- reply, edit, delete ------------------------------------------------------

// setCompose puts the composer in reply or edit mode (or back to normal).
function setCompose(c) {
  S.compose = c;
  const r = S.rooms.get(S.current);
  const m = c && r && r.messages.get(c.seq);
  if (!m) S.compose = null;
  $('composer-context').hidden = !S.compose;
  $('composer').classList.toggle('editing', !!S.compose && c.mode === 'edit');
  if (!S.compose) { $('composer-context-text').textContent = ''; return; }
  $('composer-context-text').textContent = c.mode === 'edit' ? t('editing')
    : t('replyingTo', displayName(m.senderName, m.senderAddress), excerpt(m.body, 60));
}

function cancelCompose() {
  if (S.compose && S.compose.mode === 'edit') $('composer-input').value = '';
  setCompose(null);
  $('composer-input').focus();
}

function startEdit(m) {
  setCompose({ mode: 'edit', seq: m.seq });
  const input = $('composer-input');
  input.value = m.body;
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

function deleteMessage(m) {
  if (!S.conn || !window.confirm(t('confirmDelete'))) return;
  const clientId = newClientId();
  S.ops.add(clientId);
  S.conn.send({ type: 'delete', id: clientId, room: m.room || S.current, clientId, target: m.seq });
  if (S.compose && S.compose.seq === m.seq) cancelCompose();
}

// jumpTo opens a room at a message, loading older pages until it is held
// (bounded), then scrolls to it and gives it the focus.
async function jumpTo(roomId, seq) {
  if (!S.rooms.has(roomId)) return;
  if (S.current !== roomId) await openRoom(roomId, false);
  const r = S.rooms.get(roomId);
  for (let i = 0; i < 20 && r && S.current === roomId && !r.messages.has(seq) && r.more && r.loaded; i++) {
    const before = r.messages.size;
    await loadOlder();
    if (r.messages.size === before) break;
  }
  const li = document.getElementById(`m-${seq}`);
  if (!li) return;
  li.tabIndex = -1;
  li.scrollIntoView({ block: 'center' });
  li.focus({ preventScroll: true });
  li.classList.add('flash');
  setTimeout(() => li.classList.remove('flash'), 2000);  if (location.hash !== `#room=${roomId}`) history.replaceState(null, '', `#room=${roomId}`);
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
  closeMention();
  const clientId = newClientId();
  const c = S.compose;
  if (c && c.mode === 'edit') {
    const m = r.messages.get(c.seq);
    if (m && m.body !== body) { S.ops.add(clientId); S.conn.send({ type: 'edit', id: clientId, room: r.id, clientId, target: c.seq, body }); }
    input.value = '';
    setCompose(null);
    return;
  }
  const frame = { type: 'send', id: clientId, room: r.id, clientId, body };
  if (c && c.mode === 'reply') frame.replyTo = c.seq;
  // Mentions picked with @ whose "@Name" is still in the text.
  const mentions = [...S.mentions].filter(([, name]) => body.includes(`@${name}`)).map(([id]) => id);
  if (mentions.length) frame.mentions = mentions;
  const p = { room: r.id, frame, el: messageItem({ room: r.id, sender: S.me.id, senderAddress: S.me.address, senderName: S.me.name, body, replyTo: frame.replyTo }, true) };
  S.pending.set(clientId, p);
  $('message-list').append(p.el);
  scrollToBottom();
  input.value = '';
  S.mentions.clear();
  setCompose(null);
  S.conn.send(frame);
}

// --- @mentions: a listbox of the room's members under the composer -----------

const MN = { items: [], active: 0, start: -1 };

function fold(s) { return (s || '').normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase(); }

function updateMention() {
  const input = $('composer-input');
  const r = S.rooms.get(S.current);
  const pos = input.selectionStart;
  const m = /(^|\s)@([^\s@]{0,30})$/.exec(input.value.slice(0, pos));
  if (!m || !r || !S.me) return closeMention();
  const q = fold(m[2]);
  const items = r.members.filter((x) => x.account !== S.me.id && (!q || fold(x.name).split(/\s+/).some((w) => w.startsWith(q)) ||
    fold(x.name).startsWith(q) || x.address.toLowerCase().startsWith(q))).slice(0, 8);
  if (!items.length) return closeMention();
  MN.items = items; MN.start = pos - m[2].length - 1;
  MN.active = Math.min(MN.active, items.length - 1);
  renderMention();
}

function renderMention() {
  const list = $('mention-list');
  list.replaceChildren(...MN.items.map((x, i) => el('li', { id: `mention-${i}`, role: 'option', 'aria-selected': String(i === MN.active),
    onmousedown: (e) => { e.preventDefault(); pickMention(i); } },
  el('span', { class: 'name', text: displayName(x.name, x.address) }), el('span', { class: 'addr', text: x.address }))));
  list.hidden = false;
  $('composer-input').setAttribute('aria-activedescendant', `mention-${MN.active}`);
}

function closeMention() {
  MN.items = []; MN.active = 0; MN.start = -1;
  $('mention-list').hidden = true;
  $('mention-list').replaceChildren();
  $('composer-input').removeAttribute('aria-activedescendant');
}

function pickMention(i) {
  const x = MN.items[i];
  if (!x) return;
  const input = $('composer-input');
  const name = displayName(x.name, x.address);
  const end = input.selectionStart;
  input.value = `${input.value.slice(0, MN.start)}@${name} ${input.value.slice(end)}`;
  const at = MN.start + name.length + 2;
  input.setSelectionRange(at, at);
  S.mentions.set(x.account, name);
  closeMention();
  input.focus();
}

// onComposerKey: the mention list's keys first (arrows, Enter/Tab to pick,
// Escape), then Escape to leave reply/edit, Enter to send.
function onComposerKey(e) {
  if (MN.items.length) {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      MN.active = (MN.active + (e.key === 'ArrowDown' ? 1 : MN.items.length - 1)) % MN.items.length;
      renderMention();
      return;
    }
    if ((e.key === 'Enter' || e.key === 'Tab') && !e.shiftKey && !e.isComposing) { e.preventDefault(); pickMention(MN.active); return; }
    if (e.key === 'Escape') { e.preventDefault(); closeMention(); return; }
  }
  if (e.key === 'Escape' && S.compose) { e.preventDefault(); cancelCompose(); return; }
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); $('composer').requestSubmit(); }
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

// --- direct conversations ------------------------------------------------------

let directTimer = null, directGen = 0;
function openDirect() {
  $('direct-input').value = '';
  $('direct-results').replaceChildren();
  $('direct-dialog').showModal();
  $('direct-input').focus();
}

async function searchDirect() {
  const q = $('direct-input').value.trim();
  const gen = ++directGen;
  if (q.length < 2) { $('direct-results').replaceChildren(); return; }
  try {
    const data = await api(`/api/v1/chat/people?q=${encodeURIComponent(q)}&limit=10`);
    if (gen !== directGen) return;
    const people = (data.people || []).filter((p) => !S.me || p.address.toLowerCase() !== S.me.address.toLowerCase());
    if (!people.length) { $('direct-results').replaceChildren(el('li', { class: 'muted', text: t('noResults') })); return; }
    $('direct-results').replaceChildren(...people.map((p) => el('li', {},
      el('span', {}, displayName(p.name, p.address), el('span', { class: 'addr', text: p.local ? p.address : `${p.address} · ${t('notLocal')}` })),
      p.local ? el('button', { type: 'button', class: 'small', text: t('write'), 'aria-label': t('writeTo', displayName(p.name, p.address)),
        onclick: () => startDirect(p) }) : null)));
  } catch (e) {
    if (gen === directGen) $('direct-results').replaceChildren(el('li', { class: 'error', text: errorText(e.code) }));
  }
}

// startDirect opens the direct room with that person (one per pair,
// created by the server if needed).
async function startDirect(p) {
  try {
    const r = await api('/api/v1/chat/direct', { method: 'POST', body: { address: p.address } });
    if (!S.rooms.has(r.id)) {
      S.rooms.set(r.id, Object.assign({ messages: new Map(), reads: new Map(), members: [], more: true, loaded: false, activity: Date.now(), followed: true }, r));
      S.conn.subscribe({ [r.id]: r.lastSeq || 0 });
    } else {
      Object.assign(S.rooms.get(r.id), { peer: r.peer });
    }
    $('direct-dialog').close();
    await openRoom(r.id);
  } catch (e) {
    $('direct-results').replaceChildren(el('li', { class: 'error', role: 'alert', text: errorText(e.code) }));
  }
}

// --- history search ---------------------------------------------------------------

let msgSearchTimer = null, msgSearchGen = 0;
async function searchMessages() {
  clearTimeout(msgSearchTimer);
  const q = $('search-input').value.trim();
  const gen = ++msgSearchGen;
  if (q.length < 2) { $('search-panel').hidden = true; $('search-results').replaceChildren(); return; }
  try {
    const data = await api(`/api/v1/chat/search?q=${encodeURIComponent(q)}&limit=30`);
    if (gen !== msgSearchGen) return;
    const msgs = data.messages || [];
    $('search-panel').hidden = false;
    if (!msgs.length) { $('search-results').replaceChildren(el('li', { class: 'muted', text: t('noResults') })); return; }
    const words = fold(q).split(/\s+/).filter(Boolean);
    $('search-results').replaceChildren(...msgs.map((m) => {
      const r = S.rooms.get(m.room);
      return el('li', {}, el('button', { type: 'button', class: 'result', 'data-room': String(m.room), 'data-seq': String(m.seq),
        onclick: () => jumpTo(m.room, m.seq) },
      el('span', { class: 'result-room', text: r ? roomName(r) : `#${m.room}` }),
      el('span', { class: 'result-meta', text: `${m.sender ? displayName(m.senderName, m.senderAddress) : t('system')} · ${fmtTime(m.created)}` }),
      highlighted(around(m.body, words), words)));
    }));
  } catch (e) {
    if (gen !== msgSearchGen) return;
    $('search-panel').hidden = false;
    $('search-results').replaceChildren(el('li', { class: 'error', text: errorText(e.code) }));
  }
}

// around cuts a body to about 120 characters around the first word found.
function around(body, words) {
  const text = (body || '').replace(/\s+/g, ' ').trim();
  const f = fold(text);
  let at = -1;
  for (const w of words) { const i = f.indexOf(w); if (i >= 0 && (at < 0 || i < at)) at = i; }
  if (text.length <= 120 || at < 40) return excerpt(text, 120);
  return '…' + excerpt(text.slice(at - 40), 119);
}

// highlighted marks the words searched (accents and case folded; folding
// keeps offsets for the Latin letters the chat meets).
function highlighted(text, words) {
  const out = el('span', { class: 'result-text' });
  const f = fold(text);
  let i = 0;
  while (i < text.length) {
    let hit = null;
    for (const w of words) if (w && f.startsWith(w, i) && (i === 0 || !/[\p{L}\p{N}]/u.test(f[i - 1]))) { hit = w; break; }
    if (hit && f.length === text.length) { out.append(el('mark', { text: text.slice(i, i + hit.length) })); i += hit.length; continue; }
    let j = i + 1;
    while (j < text.length && !words.some((w) => w && f.startsWith(w, j))) j++;
    out.append(text.slice(i, j));
    i = j;
  }
  return out;
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
      // The event names its target; the target keeps its place and now
      // reads the new body, or is shown deleted (PROTOCOL.md 2.2).
      const old = r.messages.get(f.target);
      if (old && f.message) {
        const when = f.message.created;
        r.messages.set(f.target, f.type === 'edit' ? Object.assign({}, old, { body: f.message.body, edited: when })
          : Object.assign({}, old, { body: '', deleted: true, edited: when }));
      }
      if (S.current === r.id) {
        const keep = document.activeElement && document.activeElement.closest && document.activeElement.closest('#message-list li.msg');
        renderMessages(r);
        if (keep && keep.id) { const li = document.getElementById(keep.id); if (li) { li.tabIndex = -1; li.focus({ preventScroll: true }); } }
        if (S.compose && S.compose.seq === f.target && f.type === 'delete') setCompose(null);
        markRead(r);
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
      browserNotify((t('notifKinds') || {})[n.kind] || t('newDocument'), n.text || '', n.room);
      if (n.room && !S.rooms.has(n.room)) loadRooms().catch(() => {});
      return;
    }
    case 'ack': {
      if (f.ref) S.ops.delete(f.ref);
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
  // An edit or delete refused (its target gone, or not allowed): say so,
  // the room stays.
  if (f.ref && S.ops.delete(f.ref)) { showComposerError(f.code); return; }
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
  const seq = Number(params.get('seq'));
  if (!id || !S.rooms.has(id)) return;
  if (seq) { jumpTo(id, seq); return; }
  if (id !== S.current) openRoom(id);
}

// --- boot --------------------------------------------------------------------

function bind() {
  apply(document);
  for (const b of document.querySelectorAll('.lang-toggle')) b.addEventListener('click', () => {
    setLang(currentLang() === 'fr' ? 'en' : 'fr');
    if (S.current) clearTyping(S.current);
    renderRooms(); renderNotifications();
    const r = S.rooms.get(S.current);
    if (r) { $('room-subtitle').textContent = roomSubtitle(r); renderMessages(r); renderMembers(r); setCompose(S.compose); }
  });
  $('login-form').addEventListener('submit', login);
  $('logout-form').addEventListener('submit', logout);
  $('composer').addEventListener('submit', sendMessage);
  $('composer-input').addEventListener('keydown', onComposerKey);
  $('composer-input').addEventListener('input', () => { onComposerInput(); updateMention(); });
  $('composer-input').addEventListener('blur', () => setTimeout(closeMention, 150));
  $('composer-context-cancel').addEventListener('click', cancelCompose);
  $('search-form').addEventListener('submit', (e) => { e.preventDefault(); searchMessages(); });
  $('search-input').addEventListener('input', () => { clearTimeout(msgSearchTimer); msgSearchTimer = setTimeout(searchMessages, 300); });
  $('search-input').addEventListener('keydown', (e) => { if (e.key === 'Escape') { $('search-input').value = ''; searchMessages(); } });
  $('new-direct-button').addEventListener('click', openDirect);
  $('direct-cancel').addEventListener('click', () => $('direct-dialog').close());
  $('direct-form').addEventListener('submit', (e) => { e.preventDefault(); searchDirect(); });
  $('direct-input').addEventListener('input', () => { clearTimeout(directTimer); directTimer = setTimeout(searchDirect, 200); });
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
