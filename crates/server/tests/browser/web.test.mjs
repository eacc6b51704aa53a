// The web client in Chromium against a running server: sign-in, contacts
// with live presence, one-to-one and group chat. Needs SWITCHBOARD_URL,
// SWITCHBOARD_USERS (at least alice,bob,carol), SWITCHBOARD_PASSWORD,
// SWITCHBOARD_DOMAIN; run with `node web.test.mjs`.

import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { Person, WAIT, address, assertNoPageProblems, config, launch } from './lib.mjs';

for (const u of ['alice', 'bob', 'carol']) {
  assert.ok(config.users.includes(u), `SWITCHBOARD_USERS includes ${u}`);
}

let browser;
const people = [];
/** Makes the texts of this run unique (a server may be reused). */
const run = Date.now().toString(36);
const say = (text) => `${text} [${run}]`;

async function signIn(user, opts) {
  const p = await Person.signIn(browser, user, opts);
  people.push(p);
  return p;
}

before(async () => {
  browser = await launch();
});

afterEach(async () => {
  await Promise.all(people.splice(0).map((p) => p.close()));
  assertNoPageProblems();
});

after(async () => {
  await browser?.close();
});

test('the page is served with a strict content security policy', async () => {
  const res = await fetch(`${config.url}/`);
  assert.equal(res.status, 200);
  const csp = res.headers.get('content-security-policy') || '';
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /style-src 'self'/);
  const html = await res.text();
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
  assert.doesNotMatch(html, /\sstyle=/, 'no inline style');
  for (const file of ['/app.js', '/api.js', '/channel.js', '/app.css', '/favicon.svg']) {
    const r = await fetch(`${config.url}${file}`);
    assert.equal(r.status, 200, file);
  }
});

test('a wrong password shows the server\'s error', async () => {
  const p = await Person.open(browser, 'alice');
  people.push(p);
  await p.fillSignIn('alice', 'not the password');
  const error = p.page.locator('#signin-error');
  await error.filter({ hasText: 'Wrong user name or password' }).waitFor();
  assert.equal(await p.page.locator('#app-view').isVisible(), false);
  // The form stays usable: the right password signs in.
  await p.fillSignIn('alice', config.password);
  await p.page.locator('#app-view').waitFor({ state: 'visible' });
  assert.equal(await error.textContent(), '');
});

test('contacts: added into a group, presence and note change live, removed', async () => {
  const alice = await signIn('alice');
  await alice.ensureContact('bob', 'Team');
  await alice.ensureContact('carol');
  const bobEntry = alice.contact('bob');
  // Grouped: bob under "Team".
  await alice.page.locator('#contacts section[data-group="Team"] li.contact', { hasText: 'bob' }).waitFor();

  const bob = await signIn('bob');
  await alice.page.locator(`${contactSel('bob')}[data-availability="available"]`).waitFor();

  // Keyboard focus on bob's entry stays there while it changes.
  await bobEntry.locator('.contact-open').focus();
  await bob.page.getByLabel('Availability').selectOption('busy');
  await alice.page.locator(`${contactSel('bob')}[data-availability="busy"]`).waitFor();
  assert.match(await bobEntry.locator('.contact-availability').textContent(), /Busy/);
  assert.equal(await alice.page.evaluate(() => document.activeElement?.closest('li.contact')?.dataset.user), address('bob'));

  await bob.page.getByLabel('Note', { exact: true }).fill('Out for lunch');
  await bob.page.getByRole('button', { name: 'Set note' }).click();
  await bobEntry.locator('.contact-note', { hasText: 'Out for lunch' }).waitFor();

  await bob.page.getByRole('button', { name: 'Clear note' }).click();
  await bobEntry.locator('.contact-note').waitFor({ state: 'detached' });

  await bob.page.getByLabel('Availability').selectOption('available');
  await alice.page.locator(`${contactSel('bob')}[data-availability="available"]`).waitFor();

  // bob closes his page: he goes offline for alice.
  await bob.close();
  people.splice(people.indexOf(bob), 1);
  await alice.page.locator(`${contactSel('bob')}[data-availability="offline"]`).waitFor({ timeout: 20000 });

  await alice.contact('carol').getByRole('button', { name: /Remove .* from contacts/ }).click();
  await alice.contact('carol').waitFor({ state: 'detached' });
  await alice.contact('bob').waitFor();
});

function contactSel(user) {
  return `#contacts li.contact[data-user="${address(user)}"]`;
}

test('one-to-one chat: messages, unread count, title, typing', async () => {
  const alice = await signIn('alice');
  const bob = await signIn('bob');
  await alice.ensureContact('bob');
  await alice.openChatWith('bob');
  await alice.send(say('Hello Bob'));

  // bob has not opened it: an unread count in the list and the title.
  const entry = bob.conversationWith('alice');
  await entry.locator('.unread', { hasText: '1' }).waitFor();
  await bob.waitForTitle('(1) Switchboard');

  await entry.getByRole('button').click();
  await bob.message(say('Hello Bob')).waitFor();
  await bob.waitForTitle('Switchboard');
  assert.equal(await entry.locator('.unread').count(), 0);

  // Typing shows on the other side, then the message.
  await bob.page.getByRole('textbox', { name: 'Message', exact: true }).pressSequentially('Hi Al');
  await alice.page.locator('#typing', { hasText: 'is typing' }).waitFor();
  await bob.page.getByRole('textbox', { name: 'Message', exact: true }).fill(say('Hi Alice, how are you?'));
  await bob.page.getByRole('textbox', { name: 'Message', exact: true }).press('Enter');
  await bob.message(say('Hi Alice, how are you?')).waitFor();
  await alice.message(say('Hi Alice, how are you?')).waitFor();
  await alice.page.locator('#typing', { hasText: 'is typing' }).waitFor({ state: 'detached' }).catch(() => {});
  assert.equal((await alice.page.locator('#typing').textContent()).trim(), '');

  // Two more while bob looks at another part of the page: still counted once opened.
  await bob.page.getByRole('button', { name: 'Sign out' }).focus();
  await alice.send(say('One'));
  await alice.send(say('Two'));
  await bob.message(say('Two')).waitFor();

  // Text stays text.
  const markup = `<img src=x onerror="document.title='owned'"><b>${run}</b>`;
  await alice.send(markup);
  await bob.message(markup).waitFor();
  assert.equal(await bob.page.locator('#messages img, #messages .message-text b').count(), 0);

  // A reload keeps the session and shows the history.
  await bob.page.reload();
  await bob.page.locator('#app-view[data-connection="live"]').waitFor();
  await bob.conversationWith('alice').getByRole('button').click();
  await bob.message(say('Hello Bob')).waitFor();
  await bob.message(say('Two')).waitFor();
  assert.equal(await bob.page.locator('#messages li .message-text', { hasText: say('Two') }).count(), 1);
});

test('group chat: start, invitation, join, everyone sees messages, roster, leave', async () => {
  const bob = await signIn('bob');
  const carol = await signIn('carol');
  const alice = await signIn('alice');

  // An API error shows to the user.
  await alice.page.getByLabel('People (separated by commas)').fill('bob, nobody');
  await alice.page.getByRole('button', { name: 'Start group chat' }).click();
  await alice.page.getByRole('alert').filter({ hasText: `No such user: ${address('nobody')}` }).waitFor();

  await alice.page.getByLabel('People (separated by commas)').fill('bob, carol');
  await alice.page.getByRole('button', { name: 'Start group chat' }).click();
  await alice.page.locator('#chat-pane[data-kind="group"]').waitFor();
  const id = await alice.openGroupId();
  for (const u of ['alice', 'bob', 'carol']) {
    await alice.page.locator(`#chat-roster li[data-user="${address(u)}"]`).waitFor();
  }
  await alice.send(say('Hi team'));

  // carol joins from the invitation.
  const invitation = carol.page.locator(`#invitations li[data-id="${id}"]`);
  await invitation.waitFor();
  assert.match(await invitation.textContent(), /alice.*invited you/);
  await invitation.getByRole('button', { name: 'Join' }).click();
  await carol.page.locator(`#chat-pane[data-key="g:${id}"]`).waitFor();
  await carol.message(say('Hi team')).waitFor();
  await invitation.waitFor({ state: 'detached' });

  // bob opens it from the conversation list (unread count first).
  const bobEntry = bob.groupConversation(id);
  await bobEntry.locator('.unread').waitFor();
  await bobEntry.getByRole('button').click();
  await bob.message(say('Hi team')).waitFor();

  await carol.send(say('Hello from Carol'));
  await alice.message(say('Hello from Carol')).waitFor();
  await bob.message(say('Hello from Carol')).waitFor();
  await bob.send(say('And bob'));
  await alice.message(say('And bob')).waitFor();
  await carol.message(say('And bob')).waitFor();

  // bob leaves: the others' roster loses him.
  await bob.page.getByRole('button', { name: 'Leave conversation' }).click();
  await bob.page.locator('#chat-pane').waitFor({ state: 'hidden' });
  await alice.page.locator(`#chat-roster li[data-user="${address('bob')}"]`).waitFor({ state: 'detached' });
  await carol.page.locator(`#chat-roster li[data-user="${address('bob')}"]`).waitFor({ state: 'detached' });
  await alice.page.locator('#messages li.notice', { hasText: /left the conversation/ }).first().waitFor();
  assert.equal(await bob.groupConversation(id).count(), 0);
  // The client as a person sees it, kept as a test artefact.
  if (process.env.SWITCHBOARD_ARTIFACTS) {
    await alice.page.screenshot({ path: `${process.env.SWITCHBOARD_ARTIFACTS}/web-client-group-chat.png`, fullPage: true });
  }
});

test('a page in the background notifies and counts unread messages in its title', async () => {
  // carol's page is hidden and has no focus; notifications are allowed.
  const init = () => {
    window.shown = [];
    window.Notification = class {
      static permission = 'granted';

      static requestPermission() { return Promise.resolve('granted'); }

      constructor(title, options) { window.shown.push({ title, body: options?.body }); }

      close() {}
    };
    Object.defineProperty(Document.prototype, 'visibilityState', { get: () => 'hidden' });
    Document.prototype.hasFocus = () => false;
  };
  const carol = await signIn('carol', { init });
  const alice = await signIn('alice');
  await alice.ensureContact('carol');
  await alice.openChatWith('carol');
  await alice.send(say('Are you there?'));
  await carol.waitForTitle('(1) Switchboard');
  await carol.conversationWith('alice').getByRole('button').click();
  await carol.message(say('Are you there?')).waitFor();
  await alice.send(say('Still there?'));
  // Open but hidden: still unread, and notified.
  await carol.message(say('Still there?')).waitFor();
  await carol.waitForTitle('(1) Switchboard');
  const shown = await carol.page.evaluate(() => window.shown);
  assert.deepEqual(shown, [
    { title: address('alice'), body: say('Are you there?') },
    { title: address('alice'), body: say('Still there?') },
  ]);
  // No notification button when the permission is already decided.
  assert.equal(await carol.page.getByRole('button', { name: 'Enable notifications' }).isVisible(), false);
});

// After the one-to-one test: escalation is for good (later messages between
// alice and bob go to the group conversation).
test('adding a person to a one-to-one chat makes it a group chat', async () => {
  const alice = await signIn('alice');
  const bob = await signIn('bob');
  const carol = await signIn('carol');
  await alice.ensureContact('bob');
  await alice.openChatWith('bob');
  await alice.send(say('Shall we ask carol?'));
  await alice.page.getByLabel('Add a person').fill('carol');
  await alice.page.getByRole('button', { name: 'Add', exact: true }).click();
  await alice.page.locator('#chat-pane[data-kind="group"]').waitFor();
  const id = await alice.openGroupId();
  await alice.page.locator(`#chat-roster li[data-user="${address('carol')}"]`).waitFor();
  await alice.send(say('Three of us now'));
  for (const p of [bob, carol]) {
    await p.groupConversation(id).getByRole('button').click();
    await p.message(say('Three of us now')).waitFor();
  }
});

test('sign-out returns to the sign-in form and forgets the session', async () => {
  const alice = await signIn('alice');
  await alice.page.getByRole('button', { name: 'Sign out' }).click();
  await alice.page.locator('#signin-view').waitFor({ state: 'visible' });
  assert.equal(await alice.page.evaluate(() => sessionStorage.length), 0);
  await alice.page.reload();
  await alice.page.locator('#signin-view').waitFor({ state: 'visible', timeout: WAIT });
  assert.equal(await alice.page.locator('#app-view').isVisible(), false);
});

test('without WebSockets the client falls back to long polling', async () => {
  const carol = await signIn('carol');
  await carol.ensureContact('bob');
  // A WebSocket that never opens (as behind a proxy that refuses upgrades).
  const init = () => {
    window.WebSocket = class {
      constructor() {
        setTimeout(() => this.onclose?.({ code: 1006 }), 10);
      }

      close() {}
    };
  };
  const bob = await signIn('bob', { init, connection: 'polling' });
  await bob.ensureContact('carol');

  // Presence and messages come by long poll.
  await carol.page.getByLabel('Availability').selectOption('away');
  await bob.page.locator(`#contacts li.contact[data-user="${address('carol')}"][data-availability="away"]`).waitFor();
  await carol.openChatWith('bob');
  await carol.send(say('Polled message'));
  await bob.conversationWith('carol').locator('.unread').waitFor();
  await bob.conversationWith('carol').getByRole('button').click();
  await bob.message(say('Polled message')).waitFor();
  await bob.send(say('Polled reply'));
  await carol.message(say('Polled reply')).waitFor();
  await carol.page.getByLabel('Availability').selectOption('available');
});
