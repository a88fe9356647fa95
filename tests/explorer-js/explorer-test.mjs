// Drives the state explorer page (host/src/admin/explorer.html) in headless
// Chromium through playwright-core, clicking through it against a running
// admin listener, and checks what it shows against the admin API itself.
//
//   node explorer-test.mjs http://127.0.0.1:PORT TOKEN
//
// TOKEN: the listener's token (DATA_DIR/admin-PORT.token); the page is opened
// at /#token=TOKEN, and once without it.
//
// CHROMIUM: the browser to launch (default /usr/bin/chromium, Debian's
// package `chromium`; playwright-core downloads none). Exits non-zero with
// the failed check on any failure.
//
// The data it expects is what tests/tests/explorer.rs creates:
// - instance `shop` (account `default`, deployed), instance scope:
//   `greeting` = {"hello":"world","n":[1,2]}; `<b>x</b>` =
//   "<img src=x onerror=window.pwned=1>"; map `customers` with fields
//   c000…c119 = {"name":"Customer NNN"}; list `events` of "event 00"…"event 69";
//   `temp` = "soon gone" with a TTL of 3600 s; `path/a?b#c&d=e+f%20🎉` =
//   "tricky"; `doomed` = "delete me"; `vanishing` = "gone soon"; `item-00`…
//   `item-59` = 0…59 (68 keys);
// - a session of `shop` with a TTL of 3600 s: `note` = "in a session", list
//   `basket` of "apple", "pear";
// - a session of `shop` with a TTL of 1800 s (the customers-http cart): list
//   `items` of "milk", "eggs";
// - account `default` shared scope: `motd` = "shared hello";
// - instance `ledger` (account `acme`, not deployed): `balance` = 42.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const base = (process.argv[2] || '').replace(/\/+$/, '');
const token = process.argv[3] || '';
const exe = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 15000;

function die(msg) {
  console.error(`explorer test FAILED: ${msg}`);
  process.exit(1);
}

if (!/^https?:\/\//.test(base) || !token) {
  die('usage: node explorer-test.mjs http://127.0.0.1:PORT TOKEN (the admin listener and its token)');
}
if (!fs.existsSync(exe)) {
  die(`no Chromium at ${exe}: install Debian's package (apt-get install chromium) or set CHROMIUM to a Chromium binary`);
}

let checks = 0;
let step = 'start';

class CheckFailed extends Error {}

function check(cond, msg) {
  if (!cond) throw new CheckFailed(msg);
  checks++;
}

function eq(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  check(a === e, `${what}: expected ${e}, got ${a}`);
}

/** Polls `fn` until it returns a truthy value; fails with `what` (and the last value). */
async function until(what, fn, timeout = TIMEOUT) {
  const start = Date.now();
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) {
        checks++;
        return last;
      }
    } catch (e) {
      last = e;
    }
    if (Date.now() - start > timeout) {
      const shown = last instanceof Error ? last.message : JSON.stringify(last);
      throw new CheckFailed(`${what} (waited ${timeout} ms; last: ${shown})`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The admin API from node, to double-check the page: [status, JSON body]. */
async function api(method, p, auth = `Bearer ${token}`) {
  const headers = method === 'GET' ? {} : { 'x-wasm-state-admin': '1' };
  if (auth) headers.authorization = auth;
  const res = await fetch(base + p, { method, headers });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return [res.status, body];
}

async function apiOk(method, p) {
  const [status, body] = await api(method, p);
  if (status !== 200) throw new CheckFailed(`${method} ${p}: HTTP ${status}: ${JSON.stringify(body)}`);
  return body;
}

const enc = encodeURIComponent;
const tid = (id) => `[data-testid="${id}"]`;
const q = (s) => '"' + s.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';

const KEYS_SHOP = 68;
const PAGE = 50;
const TRICKY = 'path/a?b#c&d=e+f%20🎉';
const HTML_KEY = '<b>x</b>';
const HTML_VALUE = '"<img src=x onerror=window.pwned=1>"';

const browser = await chromium.launch({
  executablePath: exe,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const page = await browser.newPage();
page.setDefaultTimeout(TIMEOUT);

const problems = [];
page.on('pageerror', (e) => problems.push(`uncaught error in the page: ${e.message}`));
page.on('console', (m) => {
  // A failed request (the 404 the test provokes) is logged by the browser itself.
  if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
    problems.push(`console error in the page: ${m.text()}`);
  }
});
// The page is self-contained: it loads nothing from anywhere else.
page.on('request', (r) => {
  if (!r.url().startsWith(base + '/')) problems.push(`a request outside the admin API: ${r.url()}`);
});
const dialogs = [];
page.on('dialog', (d) => {
  dialogs.push({ type: d.type(), message: d.message() });
  d.accept().catch(() => {});
});

const loc = (sel) => page.locator(sel);
const texts = (sel) => loc(sel).allTextContents();
const text = (id) => loc(tid(id)).textContent();
const visible = (id) => loc(tid(id)).isVisible();
const idle = () => until('the page finished its requests', async () =>
  (await page.getAttribute('body', 'data-busy')) === '0');
const keyRow = (k) => loc(`${tid('key-row')}[data-key=${q(k)}]`);
const sessionRow = (id) => loc(`${tid('session-row')}[data-id=${q(id)}]`);

async function openKey(k) {
  await keyRow(k).locator(tid('key-open')).click();
  await until(`the content panel shows ${k}`, async () =>
    (await visible('content')) && (await text('content-key')) === k);
  await idle();
}

async function filterKeys(prefix, expected) {
  await loc(tid('key-prefix')).fill(prefix);
  await loc(tid('key-prefix')).press('Enter');
  await idle();
  if (expected !== undefined) {
    await until(`${expected} key rows for prefix ${q(prefix)}`, async () =>
      (await loc(tid('key-row')).count()) === expected);
  }
}

async function run() {
  step = 'the API and the page without the token';
  eq((await api('GET', '/v1/instances', ''))[0], 401, 'the API without a token');
  eq((await api('GET', '/v1/instances', 'Bearer wrong'))[0], 401, 'the API with a wrong token');
  eq((await api('GET', '/metrics', ''))[0], 200, '/metrics needs no token');
  await page.goto(base + '/');
  await idle();
  check(await visible('error'), 'an error shown without the token');
  check((await text('error-message')).includes('.token'), `the error says where the token is (${await text('error-message')})`);
  await page.goto('about:blank');

  step = 'loading the page';
  const resp = await page.goto(`${base}/#token=${encodeURIComponent(token)}`);
  eq(resp.status(), 200, 'GET / status');
  check(!page.url().includes('token='), `the token is taken out of the address (${page.url()})`);
  check((resp.headers()['content-type'] || '').startsWith('text/html'), 'GET / is HTML');
  await idle();
  check((await page.title()).includes('state explorer'), 'page title');
  check(!(await visible('error')), `no error on load (${await text('error-message')})`);
  check((await text('health')).includes('version'), 'health shown');

  step = 'the instances';
  let names;
  await until('instances ledger and shop listed, by name', async () => {
    names = await loc(tid('instance-row')).evaluateAll((rows) => rows.map((r) => r.getAttribute('data-name')));
    return JSON.stringify(names) === JSON.stringify(['ledger', 'shop']);
  }).catch((e) => {
    throw new CheckFailed(`${e.message}; shown: ${JSON.stringify(names)}`);
  });
  const shopRow = loc(`${tid('instance-row')}[data-name="shop"]`);
  const ledgerRow = loc(`${tid('instance-row')}[data-name="ledger"]`);
  eq(await shopRow.locator(tid('instance-open')).textContent(), 'shop', 'shop name');
  eq(await shopRow.locator(tid('instance-account')).textContent(), 'default', 'shop account');
  eq(await shopRow.locator(tid('instance-deployed')).textContent(), 'yes', 'shop deployed');
  eq(await ledgerRow.locator(tid('instance-account')).textContent(), 'acme', 'ledger account');
  eq(await ledgerRow.locator(tid('instance-deployed')).textContent(), 'no', 'ledger deployed');
  const apiInstances = await apiOk('GET', '/v1/instances');
  const shopBytes = await shopRow.locator(tid('instance-bytes')).textContent();
  check(/^\d+$/.test(shopBytes) && Number(shopBytes) > 0, `shop bytes is a positive number: ${shopBytes}`);
  eq(Number(shopBytes), apiInstances.find((i) => i.name === 'shop').bytes, 'shop bytes as the API says');
  eq(await loc(tid('account-row')).evaluateAll((rows) => rows.map((r) => r.getAttribute('data-name'))),
    ['acme', 'default'], 'accounts');

  step = 'the sessions of shop';
  await shopRow.locator(tid('instance-open')).click();
  await until('scope title', async () => (await text('scope-title')) === 'instance shop');
  await idle();
  const apiSessions = await apiOk('GET', '/v1/instances/shop/sessions');
  eq(apiSessions.length, 2, 'the API lists 2 sessions');
  await until('2 session rows', async () => (await loc(tid('session-row')).count()) === 2);
  const sessions = await loc(tid('session-row')).evaluateAll((rows) => rows.map((r) => ({
    id: r.getAttribute('data-id'),
    shown: r.querySelector('[data-testid="session-open"]').textContent,
    ttl: r.querySelector('[data-testid="session-ttl"]').textContent,
  })));
  eq(sessions.map((s) => s.id).sort(), apiSessions.map((s) => s.id).sort(), 'session ids as the API says');
  for (const s of sessions) {
    eq(s.shown, s.id, 'a session row shows its id');
    check(/^\d+ s$/.test(s.ttl), `a session TTL in seconds: ${s.ttl}`);
  }
  const secs = (t) => Number(t.split(' ')[0]);
  const long = sessions.find((s) => secs(s.ttl) > 1800);
  const cart = sessions.find((s) => secs(s.ttl) <= 1800);
  check(long && secs(long.ttl) >= 3000 && secs(long.ttl) <= 3600, `a session with ~3600 s left: ${JSON.stringify(sessions)}`);
  check(cart && secs(cart.ttl) >= 1500 && secs(cart.ttl) <= 1800, `a session with ~1800 s left: ${JSON.stringify(sessions)}`);

  step = 'the keys of shop';
  await until(`the first page of keys (${PAGE})`, async () => (await loc(tid('key-row')).count()) === PAGE);
  check(await visible('keys-more'), '"more keys" shown after the first page');
  const types = {};
  for (const k of ['customers', 'events', 'greeting', HTML_KEY]) {
    types[k] = await keyRow(k).locator(tid('key-type')).textContent();
  }
  eq(types, { customers: 'map', events: 'list', greeting: 'value', [HTML_KEY]: 'value' }, 'key types');
  eq(await keyRow(HTML_KEY).locator(tid('key-open')).textContent(), HTML_KEY, 'the key <b>x</b> shown literally');
  eq(await loc(`${tid('keys')} b`).count(), 0, 'no <b> element made of a key');
  const apiGreeting = (await apiOk('GET', '/v1/keys?instance=shop&prefix=greeting')).keys[0];
  eq(await keyRow('greeting').locator(tid('key-etag')).textContent(), apiGreeting.etag, 'greeting etag as the API says');
  eq(await keyRow('greeting').locator(tid('key-ttl')).textContent(), 'none', 'greeting has no TTL');
  await loc(tid('keys-more')).click();
  await until(`all ${KEYS_SHOP} keys after "more"`, async () => (await loc(tid('key-row')).count()) === KEYS_SHOP);
  await idle();
  check(!(await visible('keys-more')), '"more keys" hidden after the last page');
  const shown = await loc(tid('key-row')).evaluateAll((rows) => rows.map((r) => r.getAttribute('data-key')));
  const apiKeys = (await apiOk('GET', '/v1/keys?instance=shop&limit=1000')).keys.map((k) => k.key);
  eq(shown, apiKeys, 'the keys, in the order the API lists them');
  const tempTtl = await keyRow('temp').locator(tid('key-ttl')).textContent();
  check(/^\d+ s$/.test(tempTtl) && secs(tempTtl) >= 3000 && secs(tempTtl) <= 3600, `temp TTL ~3600 s: ${tempTtl}`);

  step = 'the prefix filter';
  await filterKeys('item-', PAGE);
  check(await visible('keys-more'), '"more keys" for item-');
  await loc(tid('keys-more')).click();
  await until('60 item- keys', async () => (await loc(tid('key-row')).count()) === 60);
  const items = await loc(tid('key-row')).evaluateAll((rows) => rows.map((r) => r.getAttribute('data-key')));
  check(items.every((k) => k.startsWith('item-')), `only item- keys: ${items}`);
  await filterKeys('path/', 1);
  eq(await loc(tid('key-row')).getAttribute('data-key'), TRICKY, 'the key with / ? # & = + % and an emoji');

  step = 'a key with URL characters';
  await openKey(TRICKY);
  eq(await text('content-type'), 'value', 'tricky key type');
  eq(await text('content-value'), '"tricky"', 'tricky key value');

  step = 'a JSON value';
  await filterKeys('', PAGE);
  await openKey('greeting');
  eq(await text('content-type'), 'value', 'greeting type');
  eq(await text('content-format'), 'JSON (pretty-printed)', 'greeting format');
  eq(await text('content-value'), JSON.stringify({ hello: 'world', n: [1, 2] }, null, 2), 'greeting pretty-printed');
  eq(await text('content-ttl'), 'none', 'greeting content TTL');
  eq(await text('content-etag'), apiGreeting.etag, 'greeting content etag');

  step = 'a key and value of HTML';
  await openKey(HTML_KEY);
  eq(await text('content-key'), HTML_KEY, 'the key <b>x</b> in the content panel');
  eq(await text('content-value'), HTML_VALUE, 'the HTML value shown as text');
  const injected = await page.evaluate(() => ({
    pwned: typeof window.pwned,
    img: document.querySelectorAll('img').length,
    b: document.querySelectorAll('main b').length,
  }));
  eq(injected, { pwned: 'undefined', img: 0, b: 0 }, 'nothing of the data became markup or ran');

  step = 'a map, paged';
  await openKey('customers');
  eq(await text('content-type'), 'map', 'customers type');
  eq(await text('content-length'), '120', 'customers length');
  await until(`${PAGE} fields`, async () => (await loc(tid('map-row')).count()) === PAGE);
  for (const n of [100, 120]) {
    check(await visible('map-more'), `"more fields" before ${n}`);
    await loc(tid('map-more')).click();
    await until(`${n} fields after "more"`, async () => (await loc(tid('map-row')).count()) === n);
    await idle();
  }
  check(!(await visible('map-more')), '"more fields" hidden after the last page');
  const fields = await texts(`${tid('map-row')} ${tid('map-field')}`);
  eq(fields, Array.from({ length: 120 }, (_, i) => 'c' + String(i).padStart(3, '0')), 'every field once, in order');
  const values = await texts(`${tid('map-row')} ${tid('map-value')}`);
  eq([values[0], values[119]], ['{"name":"Customer 000"}', '{"name":"Customer 119"}'], 'field values');

  step = 'a list, paged';
  await openKey('events');
  eq(await text('content-type'), 'list', 'events type');
  eq(await text('content-length'), '70', 'events length');
  await until(`${PAGE} items`, async () => (await loc(tid('list-row')).count()) === PAGE);
  check(!(await visible('map-box')), 'the map table is hidden for a list');
  await loc(tid('list-more')).click();
  await until('70 items after "more"', async () => (await loc(tid('list-row')).count()) === 70);
  await idle();
  check(!(await visible('list-more')), '"more items" hidden after the last page');
  const idx = await texts(`${tid('list-row')} ${tid('list-index')}`);
  eq(idx, Array.from({ length: 70 }, (_, i) => String(i)), 'list indexes');
  const listItems = await texts(`${tid('list-row')} ${tid('list-item')}`);
  eq([listItems[0], listItems[50], listItems[69]], ['"event 00"', '"event 50"', '"event 69"'], 'list items');

  step = 'deleting a key from its row';
  let before = dialogs.length;
  await keyRow('doomed').locator(tid('key-delete')).click();
  await until('the key doomed gone from the list', async () => (await keyRow('doomed').count()) === 0);
  await idle();
  eq(dialogs.length, before + 1, 'one confirmation asked');
  check(dialogs[before].type === 'confirm' && dialogs[before].message.includes('doomed'),
    `the confirmation names the key: ${JSON.stringify(dialogs[before])}`);
  check((await text('notice')).includes('Deleted key "doomed"'), `notice: ${await text('notice')}`);
  eq((await api('GET', '/v1/key?instance=shop&key=doomed'))[0], 404, 'the API has no doomed any more');
  check(!(await visible('error')), 'no error after the delete');

  step = 'deleting the open key';
  await openKey('item-00');
  before = dialogs.length;
  await loc(tid('content-delete')).click();
  await until('the content panel closed', async () => !(await visible('content')));
  await until('item-00 gone from the list', async () => (await keyRow('item-00').count()) === 0);
  await idle();
  eq(dialogs.length, before + 1, 'one confirmation asked');
  eq((await api('GET', '/v1/key?instance=shop&key=item-00'))[0], 404, 'the API has no item-00 any more');

  step = 'an error: a key deleted behind the page';
  await filterKeys('vanishing', 1);
  eq(await apiOk('DELETE', '/v1/key?instance=shop&key=vanishing'), { deleted: true }, 'vanishing deleted through the API');
  await keyRow('vanishing').locator(tid('key-open')).click();
  await until('the error area shown', () => visible('error'));
  const err = await text('error-message');
  check(err.includes('not-found') && err.includes('404') && err.includes('vanishing'),
    `the error says not-found (404) about vanishing: ${err}`);
  await loc(tid('error-dismiss')).click();
  await until('the error dismissed', async () => !(await visible('error')));

  step = 'a session\'s keys';
  await sessionRow(long.id).locator(tid('session-open')).click();
  await until('session scope title', async () => (await text('scope-title')) === `session ${long.id} of instance shop`);
  await idle();
  check(await visible('scope-instance'), '"instance scope" button in a session');
  await until('the session\'s 2 keys', async () => (await loc(tid('key-row')).count()) === 2);
  eq(await loc(tid('key-row')).evaluateAll((rows) => rows.map((r) => [r.getAttribute('data-key'),
    r.querySelector('[data-testid="key-type"]').textContent])), [['basket', 'list'], ['note', 'value']], 'session keys');
  await openKey('basket');
  eq(await texts(`${tid('list-row')} ${tid('list-item')}`), ['"apple"', '"pear"'], 'basket items');
  await openKey('note');
  eq(await text('content-value'), '"in a session"', 'note value');

  step = 'the cart session';
  await sessionRow(cart.id).locator(tid('session-open')).click();
  await until('cart session scope', async () => (await text('scope-title')) === `session ${cart.id} of instance shop`);
  await idle();
  await until('the cart\'s key', async () => (await loc(tid('key-row')).count()) === 1);
  await openKey('items');
  eq(await texts(`${tid('list-row')} ${tid('list-item')}`), ['"milk"', '"eggs"'], 'cart items');

  step = 'ending a session';
  before = dialogs.length;
  await sessionRow(cart.id).locator(tid('session-end')).click();
  await until('the ended session gone from the list', async () => (await sessionRow(cart.id).count()) === 0);
  await until('back to the instance scope', async () => (await text('scope-title')) === 'instance shop');
  await idle();
  eq(dialogs.length, before + 1, 'one confirmation asked');
  check(dialogs[before].message.includes(cart.id), 'the confirmation names the session');
  eq(await loc(tid('session-row')).count(), 1, 'one session left');
  const left = await apiOk('GET', '/v1/instances/shop/sessions');
  eq(left.map((s) => s.id), [long.id], 'the API lists only the other session');
  eq((await api('GET', `/v1/keys?instance=shop&session=${enc(cart.id)}`))[0], 404, 'the ended session\'s state is gone');
  check(!(await visible('error')), 'no error after ending the session');

  step = 'an account\'s shared state';
  await loc(`${tid('account-row')}[data-name="default"]`).locator(tid('account-open')).click();
  await until('account scope title', async () => (await text('scope-title')) === 'shared state of account default');
  await idle();
  check(!(await visible('sessions-box')), 'no sessions for an account');
  eq(await loc(tid('key-row')).evaluateAll((rows) => rows.map((r) => r.getAttribute('data-key'))), ['motd'], 'account keys');
  await openKey('motd');
  eq(await text('content-value'), '"shared hello"', 'motd value');
  await loc(`${tid('account-row')}[data-name="acme"]`).locator(tid('account-open')).click();
  await until('acme scope', async () => (await text('scope-title')) === 'shared state of account acme');
  await idle();
  await until('no keys in acme', () => visible('keys-empty'));
  check(!(await visible('content')), 'the content panel closed on a new scope');

  step = 'another instance';
  await ledgerRow.locator(tid('instance-open')).click();
  await until('ledger scope', async () => (await text('scope-title')) === 'instance ledger');
  await idle();
  check(await visible('sessions-empty'), 'ledger has no sessions');
  await openKey('balance');
  eq(await text('content-value'), '42', 'balance value');

  step = 'refresh';
  await loc(tid('refresh')).click();
  await idle();
  check(!(await visible('error')), `no error after refresh (${await text('error-message')})`);
  eq(await text('content-key'), 'balance', 'the open key stays open');

  step = 'the page itself';
  check(problems.length === 0, problems.join('\n'));
}

let failed = null;
try {
  await run();
} catch (e) {
  failed = e instanceof CheckFailed ? e.message : (e && e.stack) || String(e);
  try {
    const shot = path.join(os.tmpdir(), `explorer-failure-${process.pid}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    failed += `\n(screenshot: ${shot})`;
  } catch {
    // no screenshot
  }
}
await browser.close().catch(() => {});
if (failed) die(`${step}: ${failed}${problems.length ? '\n' + problems.join('\n') : ''}`);
console.log(`explorer: ${checks} checks passed`);
