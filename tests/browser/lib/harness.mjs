// What every browser script shares: Chromium from Debian's package driven by playwright-core,
// named steps that log and leave a screenshot when they fail, pages watched for CSP violations,
// script errors, dialogs (a fired alert() means injected script ran) and requests leaving the
// site, and small waiting helpers. Scripts get their fixtures from the environment that
// tests/tests/browser.rs sets:
//   MARQUEE_URL             the site (http://localhost:PORT: passkeys need a domain name)
//   MARQUEE_PASSWORD        the password of the fixture accounts
//   MARQUEE_ADMIN_USER      an account with the admin role
//   MARQUEE_AUDITOR_USER    an account with the auditor role
//   MARQUEE_ARTIFACTS       where screenshots go
//   MARQUEE_EXTRA_ORIGINS   other origins the pages may load from (space-separated: the S3 posters)
//   CHROMIUM                the browser (default /usr/bin/chromium)
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set (tests/tests/browser.rs sets it)`);
  return value;
}

export const config = {
  baseUrl: env('MARQUEE_URL'),
  password: env('MARQUEE_PASSWORD'),
  adminUser: process.env.MARQUEE_ADMIN_USER,
  auditorUser: process.env.MARQUEE_AUDITOR_USER,
  artifacts: env('MARQUEE_ARTIFACTS', 'browser-artifacts'),
  chromium: env('CHROMIUM', '/usr/bin/chromium'),
  extraOrigins: (process.env.MARQUEE_EXTRA_ORIGINS ?? '').split(' ').filter(Boolean),
};

// Generous: the machine is shared and slow under load.
export const TIMEOUT_MS = 30000;

export class Run {
  constructor(name) {
    this.name = name;
    this.shots = 0;
    this.problems = [];
    this.pages = new Set();
    this.contexts = [];
    this.origin = new URL(config.baseUrl).origin;
    mkdirSync(config.artifacts, { recursive: true });
  }

  async launch() {
    this.browser = await chromium.launch({
      executablePath: config.chromium,
      headless: true,
      // Root (CI, containers) cannot use Chromium's sandbox.
      args: process.getuid?.() === 0 ? ['--no-sandbox', '--disable-dev-shm-usage'] : ['--disable-dev-shm-usage'],
    });
  }

  /** A new browser context (its own cookies) with one watched page. */
  async newPage(label, options = {}) {
    const context = await this.browser.newContext({ baseURL: config.baseUrl, viewport: { width: 1280, height: 900 }, ...options });
    context.setDefaultTimeout(TIMEOUT_MS);
    this.contexts.push(context);
    const page = await context.newPage();
    page.label = label;
    this.pages.add(page);
    page.on('pageerror', (error) => this.problems.push(`${label}: uncaught error: ${error.message}`));
    page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) this.problems.push(`${label}: CSP violation: ${message.text()}`);
    });
    page.on('dialog', async (dialog) => {
      this.problems.push(`${label}: a ${dialog.type()} dialog opened ("${dialog.message()}"): injected script ran`);
      await dialog.dismiss();
    });
    page.on('request', (request) => {
      const url = request.url();
      const origin = /^(data|blob):/.test(url) ? this.origin : new URL(url).origin;
      if (origin !== this.origin && !config.extraOrigins.includes(origin)) {
        this.problems.push(`${label}: a request left the site: ${url}`);
      }
    });
    return page;
  }

  /** Runs one named step; on failure every open page is photographed. */
  async step(name, body) {
    const started = Date.now();
    process.stdout.write(`- ${name} … `);
    try {
      await body();
    } catch (error) {
      console.log('FAILED');
      for (const page of this.pages) {
        if (!page.isClosed()) await this.screenshot(page, `FAILED-${name}-${page.label}`).catch(() => {});
      }
      throw error;
    }
    console.log(`ok (${Date.now() - started} ms)`);
  }

  /** A full-page screenshot kept as an artifact: NN-SCRIPT-NAME.png. */
  async screenshot(page, name) {
    this.shots += 1;
    const file = path.join(config.artifacts, `${String(this.shots).padStart(2, '0')}-${this.name}-${name.replace(/[^\w.-]+/g, '-')}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return file;
  }

  async close() {
    for (const context of this.contexts) await context.close().catch(() => {});
    await this.browser?.close().catch(() => {});
  }
}

/** Runs a script's body with a fresh Run; exits non-zero on any failure or watched problem. */
export async function main(name, body) {
  const run = new Run(name);
  try {
    await run.launch();
    await body(run);
    if (run.problems.length) throw new Error(`problems seen in the pages:\n  ${run.problems.join('\n  ')}`);
    console.log(`${name}: all steps passed; screenshots in ${config.artifacts}`);
  } catch (error) {
    console.error(error?.stack ?? error);
    process.exitCode = 1;
  } finally {
    await run.close();
  }
}

// ---- helpers ----

export function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Runs axe-core's WCAG 2.1 A and AA rules on the page as it is (labels, names, contrast,
 * landmarks, ARIA); fails listing every violation. Evaluated through the DevTools protocol, so
 * the site's CSP stays as it is.
 */
export async function accessible(page, what) {
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    });
    return result.violations.map((v) => ({
      rule: v.id,
      impact: v.impact,
      help: v.help,
      where: v.nodes.slice(0, 5).map((node) => node.target.join(' ')),
    }));
  });
  assert(violations.length === 0, `${what}: accessibility violations:\n${JSON.stringify(violations, null, 2)}`);
}

/** Waits until `locator`'s text contains `text` (string or RegExp). */
export async function waitForText(locator, text, timeout = TIMEOUT_MS) {
  const deadline = Date.now() + timeout;
  let seen = '';
  while (Date.now() < deadline) {
    seen = (await locator.first().textContent({ timeout: 1000 }).catch(() => null)) ?? '';
    if (typeof text === 'string' ? seen.includes(text) : text.test(seen)) return seen;
    await new Promise((resolve) => { setTimeout(resolve, 100); });
  }
  throw new Error(`timed out waiting for ${JSON.stringify(String(text))}; last seen ${JSON.stringify(seen)}`);
}

/** Waits for the page's <h1> to read `text` (pages focus it when they render). */
export async function waitForHeading(page, text) {
  await waitForText(page.locator('main h1'), text);
}

/** Signs in through the sign-in page with a password. */
export async function signInWithPassword(page, username, password = config.password) {
  await page.goto('/#/sign-in');
  await waitForHeading(page, 'Sign in');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await signedInAndOnTheWay(page, username);
}

/**
 * Waits until the header shows `username` and the app has left the sign-in page for where it
 * sends the reader: a `goto` before that would be overtaken by the app's own navigation.
 */
export async function signedInAndOnTheWay(page, username) {
  await waitForText(page.locator('.signed-in-as'), username);
  await page.waitForFunction(() => !window.location.hash.startsWith('#/sign-in'));
}

/** Signs in over the JSON API from Node (no browser): the bearer token, for side effects. */
export async function apiToken(username, password = config.password) {
  const answer = await fetch(`${config.baseUrl}/api/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  assert(answer.ok, `sign-in of ${username} answered ${answer.status}`);
  return (await answer.json()).token;
}

/** A valid PNG of width × height in one colour, made here (no fixture files). */
export async function png(width, height, [r, g, b] = [200, 40, 40]) {
  const { deflateSync } = await import('node:zlib');
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes) => {
    let c = 0xffffffff;
    for (const byte of bytes) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([length, body, sum]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: width }, () => [r, g, b]).flat())]);
  const pixels = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(pixels)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
