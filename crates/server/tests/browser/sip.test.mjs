// A web user and a SIP user (driven from the Rust side by
// crates/server/tests/web_browser.rs with crates/testua) chat. This script
// prints `READY` once alice is signed in with the SIP user in her contacts;
// the Rust side then registers the SIP user and sends SWITCHBOARD_SIP_TEXT;
// alice sees the SIP user's presence and the message, and answers
// SWITCHBOARD_WEB_REPLY, which the Rust side expects at the SIP phone; then
// the SIP user watches alice's presence change from Available to Busy.
// Run with `node sip.test.mjs`.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { Person, address, assertNoPageProblems, launch } from './lib.mjs';

const sipUser = process.env.SWITCHBOARD_SIP_USER;
const sipText = process.env.SWITCHBOARD_SIP_TEXT;
const reply = process.env.SWITCHBOARD_WEB_REPLY;
assert.ok(sipUser && sipText && reply, 'SWITCHBOARD_SIP_USER, SWITCHBOARD_SIP_TEXT and SWITCHBOARD_WEB_REPLY are set');

let browser;

/** Waits (at most 30 s) until `path` exists. */
async function waitForFile(path) {
  assert.ok(path, 'the file to wait for is named');
  for (let i = 0; i < 300; i++) {
    if (existsSync(path)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${path} did not appear within 30 s`);
}

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

test('a web user and a SIP user chat', async () => {
  const alice = await Person.signIn(browser, 'alice');
  await alice.ensureContact(sipUser);
  const contact = alice.contact(sipUser);
  await contact.locator('.contact-availability', { hasText: 'Offline' }).waitFor();
  console.log('READY');

  // The SIP phone registers: its user is online for alice.
  await alice.page
    .locator(`#contacts li.contact[data-user="${address(sipUser)}"]:not([data-availability="offline"])`)
    .waitFor({ timeout: 30000 });

  const entry = alice.conversationWith(sipUser);
  await entry.locator('.unread', { hasText: '1' }).waitFor({ timeout: 30000 });
  await entry.getByRole('button').click();
  await alice.message(sipText).waitFor();
  await alice.send(reply);
  console.log('REPLIED');

  // The SIP user watches alice's presence: once the Rust side saw her
  // Available (it creates SWITCHBOARD_GO_FILE), she turns Busy in the
  // browser, and stays signed in until it saw that (SWITCHBOARD_DONE_FILE).
  await waitForFile(process.env.SWITCHBOARD_GO_FILE);
  await alice.page.getByLabel('Availability').selectOption('busy');
  console.log('BUSY');
  await waitForFile(process.env.SWITCHBOARD_DONE_FILE);
  await alice.close();
  assertNoPageProblems();
});
