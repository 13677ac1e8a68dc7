// Side effects over the API from Node for the admin and audit scripts: register users, add,
// edit and remove movies, and the keyboard and phone checks both scripts make.
import { apiToken, assert, config, signInWithPassword } from './harness.mjs';

/** Calls the command API with a bearer token; returns the parsed answer (null for 204). */
export async function call(token, method, path, body, headers = {}) {
  const answer = await fetch(`${config.baseUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await answer.text();
  assert(answer.ok, `${method} ${path} answered ${answer.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Registers `username` (the fixture password) and returns its bearer token. */
export async function registered(username) {
  const answer = await fetch(`${config.baseUrl}/api/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, email: `${username}@example.com`, password: config.password }),
  });
  assert(answer.status === 201, `registering ${username} answered ${answer.status}`);
  return apiToken(username);
}

export async function addMovie(token, title) {
  return call(token, 'POST', '/api/movies', {
    title, year: 1974, director: 'Francis Ford Coppola', genres: ['Thriller'], description: 'A surveillance expert.',
  });
}

/**
 * Tabs from the page's heading until `target` (a CSS selector) has the focus, at most `limit`
 * presses; checks that each control reached shows a focus outline. Returns how many presses.
 */
export async function tabUntil(page, target, limit = 80) {
  await page.locator('main h1').focus();
  for (let presses = 1; presses <= limit; presses += 1) {
    await page.keyboard.press('Tab');
    const state = await page.evaluate((selector) => {
      const el = document.activeElement;
      return {
        found: el?.matches(selector) ?? false,
        outline: el ? getComputedStyle(el).outlineStyle : 'none',
        tag: `${el?.tagName} ${el?.getAttribute('name') ?? el?.id ?? ''}`,
      };
    }, target);
    if (!state.tag.startsWith('BODY')) assert(state.outline !== 'none', `the focused ${state.tag} shows a focus outline`);
    if (state.found) return presses;
  }
  throw new Error(`the keyboard did not reach ${target} in ${limit} presses`);
}

/** A phone-sized page signed in as `username`, at `hash`; fails on sideways scrolling. */
export async function phonePage(run, label, username, hash, heading) {
  const phone = await run.newPage(label, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await signInWithPassword(phone, username);
  await phone.goto(`/${hash}`);
  await phone.locator('main h1', { hasText: heading }).waitFor();
  return phone;
}

export async function noSidewaysScroll(page) {
  const [scrollWidth, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert(scrollWidth <= width, `no sideways scrolling at ${width}px (${scrollWidth - width}px too wide)`);
}
