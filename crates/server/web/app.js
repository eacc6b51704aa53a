// Switchboard web client: sign-in, contacts with live presence, own
// availability and note, one-to-one and group conversations, invitations,
// unread counts and notifications. Plain ES modules, no build step, no
// framework: what the server embeds is this source. Everything shown that
// comes from the server or other people goes into the page as text
// (textContent), never as markup.

import { Api, ApiError, seg } from './api.js';
import { EventChannel } from './channel.js';

const TOKEN_KEY = 'switchboard.token';
const SEQ_KEY = 'switchboard.seq';
const APP_TITLE = 'Switchboard';
/** Send "typing" again after this long while still typing. */
const TYPING_REFRESH_MS = 10000;
/** Stop "typing" after this long without a keystroke. */
const TYPING_IDLE_MS = 5000;
/** A "typing" indication shown disappears after this long without news. */
const TYPING_SHOWN_MS = 30000;

const $ = (id) => document.getElementById(id);

/** Creates an element; `attrs` values that are null/false are left out. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const api = new Api();

const state = {
  me: null, // own address
  myName: '',
  contacts: [], // from GET /contacts
  groups: [],
  presence: new Map(), // user -> presence json (contacts and people we talk to)
  presenceAt: new Map(), // user -> when a presence event about them came
  left: new Set(), // ids of group conversations we left (late events are ignored)
  names: new Map(), // user -> display name
  convs: new Map(), // key -> conversation
  active: null, // key of the open conversation
  channel: null,
  typingOut: { key: null, active: false, sentAt: 0, idleTimer: null },
};

// ---------------------------------------------------------------- helpers

function localPart(user) {
  const i = user.indexOf('@');
  return i > 0 ? user.slice(0, i) : user;
}

/** What to call `user`: their display name, else their address. */
function nameOf(user, display) {
  if (display) {
    state.names.set(user, display);
    return display;
  }
  return state.names.get(user) || user;
}

/** A user as the API takes it: `name` becomes `name@my-domain`. */
function qualify(raw) {
  const s = raw.trim().replace(/^sip:/i, '');
  if (!s || s.includes('@') || !state.me) return s;
  return `${s}@${state.me.slice(state.me.indexOf('@') + 1)}`;
}

function textOf(m) {
  if (m.content_type === 'text/html') {
    // Shown as its text only: parsing in an inert document runs nothing.
    const doc = new DOMParser().parseFromString(m.text, 'text/html');
    return doc.body ? doc.body.textContent || '' : '';
  }
  return m.text;
}

function timeOf(at) {
  const d = new Date(at);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function presenceLabel(p, access) {
  if (access === 'pending') return 'Waiting for approval';
  if (!p) return 'Offline';
  let label = p.label || p.availability || 'Offline';
  if (p.activity) label += ` — ${p.activity.replace(/-/g, ' ')}`;
  if (p.idle && p.availability !== 'offline') label += ' (idle)';
  return label;
}

function dotClass(p, access) {
  if (access === 'pending') return 'dot pending';
  return `dot ${p && p.availability ? p.availability : 'offline'}`;
}

function showError(err) {
  const text = err instanceof ApiError ? err.text : String(err && err.message ? err.message : err);
  $('alert-text').textContent = text;
  $('alert').hidden = false;
}

function clearError() {
  $('alert').hidden = true;
  $('alert-text').textContent = '';
}

/**
 * Runs an action of the user: the error shown before goes away, and the
 * API's error shows if it fails. Resolves to the action's result, or
 * undefined if it failed.
 */
async function act(fn) {
  clearError();
  return background(fn);
}

/** Runs something the page does by itself; shows the error if it fails. */
async function background(fn) {
  try {
    return await fn();
  } catch (e) {
    if (e && e.name === 'AbortError') return undefined;
    if (!(e instanceof ApiError && e.status === 401)) showError(e);
    return undefined;
  }
}

/**
 * Re-renders part of a list without losing the keyboard focus: the button
 * that had it gets it back in the new item with the same key.
 */
function keepingFocus(root, render) {
  const active = document.activeElement;
  let selector = null;
  if (active && active !== root && root.contains(active) && active.classList.length) {
    const item = active.closest('[data-key], [data-user], [data-id]');
    const attr = item && ['data-key', 'data-user', 'data-id'].find((a) => item.hasAttribute(a));
    if (attr) selector = `[${attr}="${CSS.escape(item.getAttribute(attr))}"] .${CSS.escape(active.classList[0])}`;
  }
  render();
  if (selector && !root.contains(document.activeElement)) {
    const el = root.querySelector(selector);
    if (el) el.focus();
  }
}

function announce(text) {
  const el = $('announcer');
  el.textContent = '';
  // A new text node in a separate task is announced even if it repeats.
  setTimeout(() => { el.textContent = text; }, 50);
}

// ------------------------------------------------------------ sign-in/out

function showSignIn(message) {
  $('app-view').hidden = true;
  $('signin-view').hidden = false;
  $('signin-error').textContent = message || '';
  document.title = APP_TITLE;
  $('signin-user').focus();
}

async function signIn(ev) {
  ev.preventDefault();
  const user = $('signin-user').value.trim();
  const password = $('signin-password').value;
  const error = $('signin-error');
  if (!user || !password) {
    error.textContent = 'Enter your user name and password.';
    return;
  }
  error.textContent = '';
  $('signin-submit').disabled = true;
  try {
    const s = await api.post('/sessions', { user, password, client: 'Switchboard web client' });
    sessionStorage.setItem(TOKEN_KEY, s.token);
    sessionStorage.removeItem(SEQ_KEY);
    api.token = s.token;
    $('signin-password').value = '';
    await enter();
  } catch (e) {
    error.textContent = e instanceof ApiError ? e.text : String(e);
    $('signin-password').select();
  } finally {
    $('signin-submit').disabled = false;
  }
}

function forget() {
  if (state.channel) state.channel.stop();
  state.channel = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(SEQ_KEY);
  api.token = null;
  state.me = null;
  state.contacts = [];
  state.groups = [];
  state.presence.clear();
  state.presenceAt.clear();
  state.left.clear();
  state.convs.clear();
  state.active = null;
  $('contacts').replaceChildren();
  $('conversations').replaceChildren();
  $('invitations').replaceChildren();
  $('messages').replaceChildren();
  $('chat-pane').hidden = true;
  $('chat-empty').hidden = false;
  $('connection').textContent = '';
  delete $('app-view').dataset.connection;
  clearError();
}

async function signOut() {
  if (state.channel) state.channel.stop();
  state.channel = null;
  try {
    await api.delete('/sessions/current');
  } catch {
    // Signed out here in any case.
  }
  forget();
  showSignIn('You are signed out.');
}

function sessionEnded() {
  forget();
  showSignIn('Your session has ended; sign in again.');
}

/** After sign-in (or a reload with a token): loads the state, opens the channel. */
async function enter() {
  const me = await api.get('/me');
  state.me = me.user;
  state.myName = nameOf(me.user, me.display_name);
  $('signin-view').hidden = true;
  $('app-view').hidden = false;
  $('me-name').textContent = state.myName === me.user ? me.user : `${state.myName} (${me.user})`;
  showOwnPresence(me.presence);
  updateNotifyButton();
  await Promise.all([loadContacts(), loadConversations()]);
  renderConversations();
  const stored = sessionStorage.getItem(SEQ_KEY);
  const since = stored !== null && /^\d+$/.test(stored) ? Number(stored) : null;
  state.channel = new EventChannel({
    token: api.token,
    since,
    onEvent: handleEvent,
    onReset: () => { resync(); },
    onStatus: showConnection,
    onUnauthorized: sessionEnded,
    onSeq: (seq) => {
      if (seq === null) sessionStorage.removeItem(SEQ_KEY);
      else sessionStorage.setItem(SEQ_KEY, String(seq));
    },
  });
  state.channel.start();
  updateTitle();
}

function showConnection(status) {
  const text = {
    connecting: 'Connecting…',
    live: 'Connected',
    polling: 'Connected',
    offline: 'Connection lost; reconnecting…',
  }[status] || '';
  const el = $('connection');
  if (el.textContent !== text) el.textContent = text;
  const before = $('app-view').dataset.connection;
  $('app-view').dataset.connection = status;
  if ((status === 'live' || status === 'polling') && before !== 'live' && before !== 'polling') {
    // Online now: this session counts in the user's presence.
    background(async () => showOwnPresence(await api.get('/me/presence')));
  }
}

// ---------------------------------------------------------- own presence

function showOwnPresence(p) {
  if (!p) return;
  $('me-dot').className = dotClass(p);
  const sel = $('availability');
  if ([...sel.options].some((o) => o.value === p.availability)) sel.value = p.availability;
  const note = $('note');
  if (document.activeElement !== note) note.value = p.note || '';
}

async function setAvailability() {
  const availability = $('availability').value;
  const p = await act(() => api.put('/me/presence', { availability }));
  if (p) showOwnPresence(p);
}

async function setNote(ev) {
  ev.preventDefault();
  const note = $('note').value.trim();
  const p = await act(() => (note ? api.put('/me/note', { note }) : api.delete('/me/note')));
  if (p) {
    showOwnPresence(p);
    announce(note ? 'Note set' : 'Note cleared');
  }
}

async function clearNote() {
  const p = await act(() => api.delete('/me/note'));
  if (p) {
    $('note').value = '';
    showOwnPresence(p);
    announce('Note cleared');
  }
}

// -------------------------------------------------------------- contacts

let contactsTimer = null;
/** Reloads the contact list soon (several changes in a row make one request). */
function reloadContactsSoon() {
  clearTimeout(contactsTimer);
  contactsTimer = setTimeout(() => { background(loadContacts); }, 250);
}

async function loadContacts() {
  const started = performance.now();
  const r = await api.get('/contacts');
  state.contacts = r.contacts || [];
  state.groups = r.groups || [];
  for (const c of state.contacts) {
    nameOf(c.user, c.display_name);
    // A presence event that came while the list was on its way is newer.
    const live = state.presence.get(c.user);
    if (live && (state.presenceAt.get(c.user) || 0) > started) {
      c.presence = live;
      c.access = live.access === 'pending' ? 'pending' : 'allowed';
    } else if (c.presence) {
      state.presence.set(c.user, c.presence);
    }
  }
  renderContacts();
}

function renderContacts() {
  const root = $('contacts');
  const byGroup = new Map(state.groups.map((g) => [g, []]));
  const ungrouped = [];
  for (const c of state.contacts) {
    if (c.group && byGroup.has(c.group)) byGroup.get(c.group).push(c);
    else if (c.group) byGroup.set(c.group, [c]);
    else ungrouped.push(c);
  }
  const sections = [];
  const section = (title, list) => {
    const id = `group-${sections.length}`;
    list.sort((a, b) => nameOf(a.user).localeCompare(nameOf(b.user)));
    sections.push(h('section', { class: 'contact-group', 'aria-labelledby': id, 'data-group': title },
      h('h3', { id, text: title }),
      list.length
        ? h('ul', { class: 'plain' }, list.map(contactItem))
        : h('p', { class: 'muted', text: 'No one in this group.' })));
  };
  for (const [g, list] of byGroup) section(g, list);
  if (ungrouped.length || !sections.length) {
    if (ungrouped.length) section(sections.length ? 'Other contacts' : 'Contacts', ungrouped);
    else sections.push(h('p', { class: 'muted', text: 'Your contact list is empty.' }));
  }
  keepingFocus(root, () => root.replaceChildren(...sections));
  $('group-names').replaceChildren(...state.groups.map((g) => h('option', { value: g })));
}

function contactItem(c) {
  const p = state.presence.get(c.user) || c.presence;
  const name = nameOf(c.user, c.display_name);
  const status = presenceLabel(p, c.access);
  const note = p && p.note ? p.note : '';
  return h('li', {
    class: 'contact',
    'data-user': c.user,
    'data-availability': c.access === 'pending' ? 'pending' : (p ? p.availability : 'offline'),
  },
  h('button', {
    type: 'button',
    class: 'contact-open',
    title: `Chat with ${name}`,
    onclick: () => openOneToOne(c.user),
  },
  h('span', { class: dotClass(p, c.access), 'aria-hidden': 'true' }),
  h('span', { class: 'contact-name', text: name }),
  h('span', { class: 'contact-status' },
    h('span', { class: 'contact-availability', text: status }),
    note ? h('span', { class: 'contact-note', text: ` — ${note}` }) : null)),
  h('button', {
    type: 'button',
    class: 'contact-remove',
    'aria-label': `Remove ${name} from contacts`,
    title: `Remove ${name} from contacts`,
    onclick: () => removeContact(c.user),
  }, '×'));
}

function updateContactPresence(user) {
  const li = [...$('contacts').querySelectorAll('li.contact')].find((el) => el.dataset.user === user);
  const c = state.contacts.find((x) => x.user === user);
  if (li && c) keepingFocus($('contacts'), () => li.replaceWith(contactItem(c)));
}

async function addContact(ev) {
  ev.preventDefault();
  const user = qualify($('add-contact-user').value);
  const group = $('add-contact-group').value.trim();
  if (!user) return;
  const ok = await act(async () => {
    await api.put(`/contacts/${seg(user)}`, group ? { group } : undefined);
    await loadContacts();
    return true;
  });
  if (ok) {
    $('add-contact-user').value = '';
    $('add-contact-group').value = '';
    announce(`${user} added to your contacts`);
  }
}

async function removeContact(user) {
  const ok = await act(async () => {
    await api.delete(`/contacts/${seg(user)}`);
    await loadContacts();
    return true;
  });
  if (ok) announce(`${nameOf(user)} removed from your contacts`);
}

// --------------------------------------------------------- conversations

function newConv(key, fields) {
  const conv = {
    key,
    id: null,
    kind: 'one_to_one',
    peer: null,
    participants: [],
    subject: null,
    messages: [],
    unread: 0,
    loaded: false,
    loading: null,
    invitation: null,
    ended: false,
    typing: null,
    typingTimer: null,
    last: 0,
    ...fields,
  };
  state.convs.set(key, conv);
  return conv;
}

function oneToOne(peer, id) {
  const key = `u:${peer}`;
  const conv = state.convs.get(key) || newConv(key, { peer });
  if (id) conv.id = id;
  return conv;
}

function group(id) {
  const key = `g:${id}`;
  return state.convs.get(key) || newConv(key, { id, kind: 'group' });
}

function convTitle(conv) {
  if (conv.kind === 'one_to_one') return nameOf(conv.peer);
  if (conv.subject) return conv.subject;
  const others = conv.participants.map((p) => p.user).filter((u) => u !== state.me);
  return others.length ? `Group: ${others.map((u) => nameOf(u)).join(', ')}` : 'Group conversation';
}

function isNotice(conv, from) {
  return conv.kind === 'group' && from.startsWith(`conf-${conv.id}@`);
}

async function loadConversations() {
  const r = await api.get('/conversations');
  for (const c of r.conversations || []) applyConversation(c).listed = true;
}

/** Takes what the API says about a conversation into the state. */
function applyConversation(c) {
  if (c.kind === 'group') {
    const conv = group(c.id);
    conv.subject = c.subject || null;
    conv.participants = c.participants || [];
    for (const p of conv.participants) nameOf(p.user, p.display_name);
    conv.last = Math.max(conv.last, c.last_activity_at || c.created_at || 0);
    conv.ended = false;
    return conv;
  }
  nameOf(c.with, c.with_display_name);
  return oneToOne(c.with, c.id);
}

/** The id of a one-to-one conversation (asking the server the first time). */
async function convId(conv) {
  if (!conv.id) {
    const c = await api.post('/conversations', { with: conv.peer });
    applyConversation(c);
  }
  return conv.id;
}

/** Loads a conversation's recent history once, merged with what came meanwhile. */
function loadHistory(conv, force) {
  if ((conv.loaded && !force) || conv.loading) return conv.loading || Promise.resolve();
  conv.loading = (async () => {
    try {
      const id = await convId(conv);
      const r = await api.get(`/conversations/${seg(id)}/messages`);
      const history = (r.messages || []).map((m) => message(conv, m, false));
      // Messages that came (or were sent) while loading and are not in the
      // history stay, after it.
      const rest = conv.messages.filter((m) => {
        const i = history.findIndex((x) => !x.matched && x.from === m.from && x.text === m.text
          && Math.abs(x.at - m.at) < 5000);
        if (i < 0) return true;
        history[i].matched = true;
        return false;
      });
      conv.messages = history.concat(rest);
      conv.loaded = true;
      for (const m of conv.messages) conv.last = Math.max(conv.last, m.at);
      if (state.active === conv.key) renderMessages(conv);
    } finally {
      conv.loading = null;
    }
  })();
  return conv.loading;
}

/** A message of the state from an event or history entry. */
function message(conv, m, replay) {
  const from = m.from || '';
  return {
    from,
    name: nameOf(from, m.from_display),
    text: textOf(m),
    at: typeof m.at === 'number' ? m.at : Date.now(),
    mine: from === state.me,
    notice: isNotice(conv, from),
    replay: Boolean(replay),
    status: null,
  };
}

function addMessage(conv, m) {
  if (m.replay && conv.messages.some((x) => x.from === m.from && x.text === m.text && x.at === m.at)) {
    return false;
  }
  conv.messages.push(m);
  if (conv.messages.length > 1000) conv.messages.splice(0, conv.messages.length - 1000);
  conv.last = Math.max(conv.last, m.at);
  if (state.active === conv.key) appendMessage(m);
  return true;
}

/** A message from someone else arrived: unread count, announcements, notification. */
function incoming(conv, m) {
  if (!addMessage(conv, m)) return;
  if (m.mine || m.notice || m.replay) {
    renderConversations();
    return;
  }
  const seen = state.active === conv.key && document.visibilityState === 'visible' && document.hasFocus();
  if (!seen) {
    conv.unread += 1;
    updateTitle();
  }
  if (state.active !== conv.key) {
    announce(`New message from ${m.name}${conv.kind === 'group' ? ` in ${convTitle(conv)}` : ''}: ${m.text}`);
  }
  if (!seen) notify(`${m.name}${conv.kind === 'group' ? ` (${convTitle(conv)})` : ''}`, m.text, conv);
  renderConversations();
}

function setTyping(conv, user, active) {
  clearTimeout(conv.typingTimer);
  conv.typing = active ? user : null;
  if (active) {
    conv.typingTimer = setTimeout(() => {
      conv.typing = null;
      if (state.active === conv.key) renderTyping(conv);
    }, TYPING_SHOWN_MS);
  }
  if (state.active === conv.key) renderTyping(conv);
}

function renderTyping(conv) {
  const text = conv.typing ? `${nameOf(conv.typing)} is typing…` : '';
  const el = $('typing');
  if (el.textContent !== text) el.textContent = text;
}

function unreadTotal() {
  let n = 0;
  for (const c of state.convs.values()) n += c.unread;
  return n;
}

function updateTitle() {
  const n = unreadTotal();
  const title = n > 0 ? `(${n}) ${APP_TITLE}` : APP_TITLE;
  if (document.title !== title) document.title = title;
}

function renderConversations() {
  const list = [...state.convs.values()]
    .filter((c) => c.kind === 'group' || c.messages.length || c.unread || c.key === state.active || c.listed)
    .sort((a, b) => b.last - a.last);
  for (const c of list) c.listed = true;
  const items = list.map((c) => {
    const title = convTitle(c);
    const peerPresence = c.kind === 'one_to_one' ? state.presence.get(c.peer) : null;
    return h('li', { 'data-key': c.key, 'data-kind': c.kind, 'data-id': c.id },
      h('button', {
        type: 'button',
        class: 'conversation-open',
        'aria-current': c.key === state.active ? 'true' : null,
        onclick: () => openConv(c),
      },
      c.kind === 'one_to_one'
        ? h('span', { class: dotClass(peerPresence), 'aria-hidden': 'true' })
        : null,
      h('span', { class: 'conversation-title', text: title }),
      c.invitation ? h('span', { class: 'tag', text: 'invited' }) : null,
      c.ended ? h('span', { class: 'tag', text: 'ended' }) : null,
      c.unread
        ? h('span', { class: 'unread', 'data-unread': c.unread },
          h('span', { 'aria-hidden': 'true', text: String(c.unread) }),
          h('span', { class: 'visually-hidden', text: `, ${c.unread} unread` }))
        : null));
  });
  keepingFocus($('conversations'), () => $('conversations').replaceChildren(...items));
  $('conversations-empty').hidden = list.length > 0;
  renderInvitations();
}

function renderInvitations() {
  const pending = [...state.convs.values()].filter((c) => c.invitation && !c.ended);
  $('invitations-section').hidden = pending.length === 0;
  const items = pending.map((c) => {
    const by = nameOf(c.invitation.from, c.invitation.from_display);
    return h('li', { class: 'invitation', 'data-id': c.id },
      h('p', { text: `${by} invited you to a group conversation.` }),
      h('div', { class: 'inline' },
        h('button', { type: 'button', class: 'invitation-join primary', onclick: () => join(c) }, 'Join'),
        h('button', { type: 'button', class: 'invitation-decline', onclick: () => decline(c) }, 'Decline')));
  });
  keepingFocus($('invitations'), () => $('invitations').replaceChildren(...items));
}

// ------------------------------------------------------------- chat pane

async function openOneToOne(user) {
  const conv = oneToOne(user);
  await openConv(conv);
}

async function openConv(conv) {
  stopTyping();
  state.active = conv.key;
  conv.listed = true;
  if (conv.unread) {
    conv.unread = 0;
    updateTitle();
  }
  $('chat-empty').hidden = true;
  $('chat-pane').hidden = false;
  renderChatHeader(conv);
  renderMessages(conv);
  renderTyping(conv);
  renderConversations();
  $('composer-text').focus();
  if (!conv.loaded) await act(() => loadHistory(conv));
}

function closeChat() {
  stopTyping();
  state.active = null;
  $('chat-pane').hidden = true;
  $('chat-empty').hidden = false;
  renderConversations();
}

function activeConv() {
  return state.active ? state.convs.get(state.active) : null;
}

function renderChatHeader(conv) {
  $('chat-pane').dataset.kind = conv.kind;
  $('chat-pane').dataset.key = conv.key;
  $('chat-title').textContent = convTitle(conv);
  if (conv.kind === 'one_to_one') {
    const p = state.presence.get(conv.peer);
    $('chat-presence').textContent = p ? presenceLabel(p) + (p.note ? ` — ${p.note}` : '') : '';
    $('chat-presence').hidden = !p;
    $('chat-roster').replaceChildren();
    $('chat-roster').hidden = true;
  } else {
    $('chat-presence').hidden = true;
    $('chat-roster').hidden = false;
    $('chat-roster').replaceChildren(...conv.participants.map((p) => h('li', { 'data-user': p.user },
      p.user === state.me ? `${nameOf(p.user, p.display_name)} (you)` : nameOf(p.user, p.display_name))));
  }
  $('chat-invitation').hidden = !conv.invitation || conv.ended;
  if (conv.invitation) {
    $('chat-invitation-text').textContent = `${nameOf(conv.invitation.from, conv.invitation.from_display)} invited you to this conversation.`;
  }
  $('chat-ended').hidden = !conv.ended;
  $('chat-leave').hidden = conv.kind !== 'group' || conv.ended;
  $('add-person-form').hidden = conv.ended;
  $('composer-text').disabled = conv.ended;
}

function messageItem(m) {
  const cls = `message${m.mine ? ' mine' : ''}${m.notice ? ' notice' : ''}`;
  const when = new Date(m.at);
  if (m.notice) {
    return h('li', { class: cls }, h('span', { class: 'message-text', text: m.text }));
  }
  return h('li', { class: cls, 'data-from': m.from },
    h('div', { class: 'message-meta' },
      h('span', { class: 'message-from', text: m.mine ? 'You' : m.name }),
      h('time', { datetime: Number.isNaN(when.getTime()) ? null : when.toISOString(), text: timeOf(m.at) })),
    h('div', { class: 'message-text', text: m.text }),
    m.status ? h('div', { class: 'message-status', text: m.status }) : null);
}

function renderMessages(conv) {
  const list = $('messages');
  list.replaceChildren(...conv.messages.map(messageItem));
  list.scrollTop = list.scrollHeight;
}

function appendMessage(m) {
  const list = $('messages');
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  list.append(messageItem(m));
  if (atBottom || m.mine) list.scrollTop = list.scrollHeight;
}

async function send(ev) {
  ev.preventDefault();
  const box = $('composer-text');
  const text = box.value;
  let conv = activeConv();
  if (!conv || !text.trim()) return;
  box.value = '';
  stopTyping(true);
  const r = await act(async () => {
    const id = await convId(conv);
    return api.post(`/conversations/${seg(id)}/messages`, { text });
  });
  if (!r) {
    // Not sent: give the text back.
    if (!box.value) box.value = text;
    return;
  }
  if (conv.kind === 'one_to_one' && r.conversation && r.conversation !== conv.id) {
    // The one-to-one conversation became a group conversation.
    conv = group(r.conversation);
    await act(async () => applyConversation(await api.get(`/conversations/${seg(r.conversation)}`)));
    await openConv(conv);
    const now = Date.now();
    if (conv.messages.some((x) => x.mine && x.text === text && Math.abs(x.at - now) < 5000)) {
      renderConversations();
      return; // The group's history already has it.
    }
  }
  const m = message(conv, { from: state.me, text, at: Date.now() }, false);
  if (r.status === 'stored') m.status = `${convTitle(conv)} is offline; the message will be delivered when they sign in.`;
  addMessage(conv, m);
  renderConversations();
}

function composerKey(ev) {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    $('composer').requestSubmit();
  }
}

/** Tells the other party of a one-to-one conversation that we type. */
function typed() {
  const conv = activeConv();
  const t = state.typingOut;
  if (!conv || conv.kind !== 'one_to_one') return;
  if (!$('composer-text').value.trim()) {
    stopTyping();
    return;
  }
  clearTimeout(t.idleTimer);
  t.idleTimer = setTimeout(() => stopTyping(), TYPING_IDLE_MS);
  const now = Date.now();
  if (t.active && t.key === conv.key && now - t.sentAt < TYPING_REFRESH_MS) return;
  t.active = true;
  t.key = conv.key;
  t.sentAt = now;
  postTyping(conv, true);
}

/** Ends our typing indication (quietly when a message is being sent: it ends it). */
function stopTyping(quiet) {
  const t = state.typingOut;
  clearTimeout(t.idleTimer);
  if (!t.active) return;
  t.active = false;
  const conv = t.key ? state.convs.get(t.key) : null;
  if (conv && !quiet) postTyping(conv, false);
}

function postTyping(conv, active) {
  // Best effort: a lost typing indication is not worth an error message.
  convId(conv)
    .then((id) => api.post(`/conversations/${seg(id)}/typing`, { active }))
    .catch(() => {});
}

async function addPerson(ev) {
  ev.preventDefault();
  const conv = activeConv();
  const user = qualify($('add-person-user').value);
  if (!conv || !user) return;
  const r = await act(async () => {
    const id = await convId(conv);
    return api.post(`/conversations/${seg(id)}/participants`, { user });
  });
  if (!r) return;
  $('add-person-user').value = '';
  let target = conv;
  if (r.kind === 'group') {
    target = applyConversation(r);
  } else if (r.conversation) {
    target = group(r.conversation);
  }
  if (r.status === 'ringing') announce(`Invitation sent to ${nameOf(user)}; waiting for an answer`);
  else announce(`${nameOf(user)} added`);
  if (target !== conv) await openConv(target);
  else renderChatHeader(conv);
  renderConversations();
}

async function leave() {
  const conv = activeConv();
  if (!conv || conv.kind !== 'group') return;
  const ok = await act(async () => {
    await api.post(`/conversations/${seg(conv.id)}/leave`);
    return true;
  });
  if (!ok) return;
  state.convs.delete(conv.key);
  state.left.add(conv.id);
  closeChat();
  announce('You left the conversation');
}

async function join(conv) {
  const r = await act(() => api.post(`/conversations/${seg(conv.id)}/join`));
  if (!r) return;
  conv.invitation = null;
  applyConversation(r);
  await openConv(conv);
}

async function decline(conv) {
  const ok = await act(async () => {
    await api.post(`/conversations/${seg(conv.id)}/leave`);
    return true;
  });
  if (!ok) return;
  state.convs.delete(conv.key);
  state.left.add(conv.id);
  if (state.active === conv.key) closeChat();
  else renderConversations();
}

async function startGroup(ev) {
  ev.preventDefault();
  const people = $('new-group-people').value.split(/[\s,;]+/).map(qualify).filter(Boolean);
  if (!people.length) return;
  const r = await act(() => api.post('/conversations', { participants: people }));
  if (!r) return;
  $('new-group-people').value = '';
  const conv = applyConversation(r);
  conv.loaded = true;
  conv.last = Date.now();
  const failed = (r.invitations || []).filter((i) => !i.added);
  await openConv(conv);
  if (failed.length) {
    showError(`Could not add ${failed.map((i) => `${i.user} (status ${i.status})`).join(', ')}`);
  }
}

// ---------------------------------------------------------------- events

function handleEvent(e) {
  switch (e.type) {
    case 'hello':
      break;
    case 'presence': {
      const { user } = e;
      state.presence.set(user, e);
      state.presenceAt.set(user, performance.now());
      const c = state.contacts.find((x) => x.user === user);
      if (c) {
        c.presence = e;
        c.access = e.access === 'pending' ? 'pending' : 'allowed';
        updateContactPresence(user);
      }
      const conv = state.convs.get(`u:${user}`);
      if (conv) {
        if (state.active === conv.key) renderChatHeader(conv);
        renderConversations();
      }
      break;
    }
    case 'contacts.changed':
    case 'contacts_changed':
      reloadContactsSoon();
      break;
    case 'message': {
      const peer = e.from === state.me ? e.to : e.from;
      const conv = oneToOne(peer, e.conversation);
      setTyping(conv, null, false);
      incoming(conv, message(conv, e, false));
      if (!conv.loaded) background(() => loadHistory(conv));
      break;
    }
    case 'typing':
      setTyping(oneToOne(e.from, e.conversation), e.from, e.active !== false);
      break;
    case 'conversation.message': {
      if (state.left.has(e.conversation)) break;
      const conv = group(e.conversation);
      incoming(conv, message(conv, e, e.replay));
      break;
    }
    case 'invitation': {
      state.left.delete(e.conversation);
      const conv = group(e.conversation);
      conv.invitation = { from: e.from, from_display: e.from_display };
      conv.ended = false;
      conv.last = Date.now();
      nameOf(e.from, e.from_display);
      const by = nameOf(e.from);
      announce(`${by} invited you to a group conversation`);
      notify('Invitation', `${by} invited you to a group conversation`, conv);
      if (!conv.participants.length) background(async () => applyConversation(await api.get(`/conversations/${seg(conv.id)}`)));
      if (state.active === conv.key) renderChatHeader(conv);
      renderConversations();
      break;
    }
    case 'roster': {
      if (state.left.has(e.conversation)) break;
      const conv = group(e.conversation);
      conv.participants = e.participants || [];
      for (const p of conv.participants) nameOf(p.user, p.display_name);
      if (state.active === conv.key) renderChatHeader(conv);
      renderConversations();
      break;
    }
    case 'conversation.ended': {
      const conv = state.convs.get(`g:${e.conversation}`);
      if (conv) {
        conv.ended = true;
        conv.invitation = null;
        if (state.active === conv.key) renderChatHeader(conv);
        renderConversations();
      }
      break;
    }
    case 'session.closed':
    case 'closed':
      sessionEnded();
      break;
    default:
      break;
  }
}

let resyncing = null;
/** Reloads everything (events may have been lost). */
function resync() {
  if (resyncing) return;
  resyncing = background(async () => {
    await Promise.all([loadContacts(), loadConversations()]);
    for (const conv of state.convs.values()) {
      if (conv.loaded) {
        conv.messages = [];
        await loadHistory(conv, true);
      }
    }
    const conv = activeConv();
    if (conv) {
      renderChatHeader(conv);
      renderMessages(conv);
    }
    renderConversations();
  }).finally(() => { resyncing = null; });
}

// --------------------------------------------------------- notifications

function updateNotifyButton() {
  const button = $('notify-enable');
  button.hidden = !('Notification' in window) || Notification.permission !== 'default';
}

async function enableNotifications() {
  try {
    await Notification.requestPermission();
  } catch {
    // Old browsers or denied: nothing else to do.
  }
  updateNotifyButton();
}

function notify(title, body, conv) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  if (document.visibilityState === 'visible' && document.hasFocus()) return;
  try {
    const n = new Notification(title, { body: body.slice(0, 200), tag: conv.key });
    n.onclick = () => {
      window.focus();
      openConv(conv);
      n.close();
    };
  } catch {
    // Some browsers allow notifications only from a service worker.
  }
}

function seen() {
  const conv = activeConv();
  if (conv && conv.unread && document.visibilityState === 'visible') {
    conv.unread = 0;
    updateTitle();
    renderConversations();
  }
}

// ------------------------------------------------------------------ start

function init() {
  api.onUnauthorized = sessionEnded;
  $('signin-form').addEventListener('submit', signIn);
  $('signout').addEventListener('click', signOut);
  $('availability').addEventListener('change', setAvailability);
  $('note-form').addEventListener('submit', setNote);
  $('note-clear').addEventListener('click', clearNote);
  $('notify-enable').addEventListener('click', enableNotifications);
  $('add-contact-form').addEventListener('submit', addContact);
  $('new-group-form').addEventListener('submit', startGroup);
  $('composer').addEventListener('submit', send);
  $('composer-text').addEventListener('keydown', composerKey);
  $('composer-text').addEventListener('input', typed);
  $('add-person-form').addEventListener('submit', addPerson);
  $('chat-leave').addEventListener('click', leave);
  $('chat-join').addEventListener('click', () => {
    const conv = activeConv();
    if (conv) join(conv);
  });
  $('alert-close').addEventListener('click', clearError);
  document.addEventListener('visibilitychange', seen);
  window.addEventListener('focus', seen);

  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    showSignIn();
    return;
  }
  api.token = token;
  enter().catch((e) => {
    if (e instanceof ApiError && e.status === 401) return; // sessionEnded showed the form
    forget();
    showSignIn(e instanceof ApiError ? e.text : String(e));
  });
}

init();
