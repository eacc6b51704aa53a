// Shared helpers of the browser tests: the configuration from the
// environment (set by crates/server/tests/web_browser.rs), Chromium, and
// a signed-in person driving one page of the web client.

import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

function env(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (fallback !== undefined) return fallback;
    throw new Error(`${name} is not set (the tests are run by crates/server/tests/web_browser.rs)`);
  }
  return v;
}

export const config = {
  /** The server's HTTP listener, e.g. http://127.0.0.1:8080 */
  url: env('SWITCHBOARD_URL').replace(/\/$/, ''),
  users: env('SWITCHBOARD_USERS').split(',').map((u) => u.trim()).filter(Boolean),
  password: env('SWITCHBOARD_PASSWORD'),
  domain: env('SWITCHBOARD_DOMAIN'),
  chromium: env('CHROMIUM', '/usr/bin/chromium'),
};

/** How long a step may take before the test fails. */
export const WAIT = 10000;

export const address = (user) => `${user}@${config.domain}`;

export async function launch() {
  return chromium.launch({
    executablePath: config.chromium,
    headless: true,
    // Root in a container has no user namespaces for Chromium's sandbox.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}

/** Problems seen in any page: CSP violations, script errors. */
export const pageProblems = [];

/** Fails if a page reported a content security policy violation or a script error. */
export function assertNoPageProblems() {
  const found = pageProblems.splice(0);
  assert.deepEqual(found, [], `problems in the pages:\n${found.join('\n')}`);
}

/** One person with their own browser context (own sessionStorage) and page. */
export class Person {
  constructor(user, context, page) {
    this.user = user;
    this.address = address(user);
    this.context = context;
    this.page = page;
  }

  /**
   * Opens the client's page for `user` (not signed in yet). `init` runs in
   * the page before its own scripts (to stand in for browser features).
   */
  static async open(browser, user, { init } = {}) {
    const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    page.on('console', (m) => {
      const text = m.text();
      if (m.type() === 'error' && !/the server responded with a status of 4\d\d/.test(text)) {
        pageProblems.push(`${user}: console error: ${text}`);
      } else if (/Content[- ]Security[- ]Policy/i.test(text)) {
        pageProblems.push(`${user}: ${text}`);
      }
    });
    page.on('pageerror', (e) => pageProblems.push(`${user}: page error: ${e.message}`));
    if (init) await page.addInitScript(init);
    await page.goto(`${config.url}/`);
    return new Person(user, context, page);
  }

  /** Opens a page and signs in through the form. */
  static async signIn(browser, user, { init, connection = 'live' } = {}) {
    const p = await Person.open(browser, user, { init });
    await p.fillSignIn(user, config.password);
    await p.page.locator('#app-view').waitFor({ state: 'visible' });
    await p.page.locator(`#app-view[data-connection="${connection}"]`).waitFor();
    return p;
  }

  async fillSignIn(user, password) {
    const { page } = this;
    await page.getByLabel('User name').fill(user);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  async close() {
    await this.context.close();
  }

  contact(user) {
    return this.page.locator(`#contacts li.contact[data-user="${address(user)}"]`);
  }

  /** Adds `user` to the contact list unless they are in it. */
  async ensureContact(user, group) {
    if (await this.contact(user).count()) return;
    const { page } = this;
    await page.getByLabel('User', { exact: true }).fill(user);
    await page.getByLabel('Group (optional)').fill(group || '');
    await page.getByRole('button', { name: 'Add contact' }).click();
    await this.contact(user).waitFor();
  }

  /** The entry of a one-to-one conversation in the list. */
  conversationWith(user) {
    return this.page.locator(`#conversations li[data-key="u:${address(user)}"]`);
  }

  groupConversation(id) {
    return this.page.locator(`#conversations li[data-key="g:${id}"]`);
  }

  /** The id of the open conversation, when it is a group conversation. */
  async openGroupId() {
    const key = await this.page.locator('#chat-pane').getAttribute('data-key');
    assert.ok(key && key.startsWith('g:'), `a group conversation is open (open: ${key})`);
    return key.slice(2);
  }

  async openChatWith(user) {
    await this.contact(user).locator('.contact-open').click();
    await this.page.locator(`#chat-pane[data-key="u:${address(user)}"]`).waitFor();
  }

  async send(text) {
    const box = this.page.getByRole('textbox', { name: 'Message', exact: true });
    await box.fill(text);
    await box.press('Enter');
    await this.message(text).waitFor();
  }

  /** A message shown in the open conversation. */
  message(text) {
    return this.page.locator('#messages li .message-text', { hasText: text });
  }

  async title() {
    return this.page.title();
  }

  async waitForTitle(title) {
    await this.page.waitForFunction((t) => document.title === t, title, { timeout: WAIT });
  }
}
