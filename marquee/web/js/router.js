// Hash routing (#/movies/ID): no clash with /api and /graphql, and `/` is the only page URL the
// server needs to know. Each route names a page module (see routes.js); the router loads it,
// checks the role it needs, renders it into <main>, moves focus to its heading and tears it
// down when the reader leaves.
import { h, replace, errorBox } from './dom.js';
import { currentUser, hasRole } from './session.js';

let routes = [];
let main;
let leaving = [];
let renderCount = 0;

/** The current hash as { path, query }. */
export function location() {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  const [path, search = ''] = raw.split('?');
  return { path: path || '/', query: new URLSearchParams(search) };
}

/** Goes to `path` (such as '/movies/ID'); renders even when it is the current one. */
export function navigate(path) {
  const target = `#${path}`;
  if (window.location.hash === target) render();
  else window.location.hash = target;
}

/** Says `message` to screen readers (the polite live region). */
export function announce(message) {
  const announcer = document.getElementById('announcer');
  announcer.textContent = '';
  // A change after a tick is read even when the text repeats.
  setTimeout(() => {
    announcer.textContent = message;
  }, 50);
}

function match(path) {
  for (const route of routes) {
    const names = [];
    const pattern = new RegExp(`^${route.path.replace(/:(\w+)/g, (_, name) => {
      names.push(name);
      return '([^/]+)';
    })}$`);
    const found = pattern.exec(path);
    if (found) {
      const params = Object.fromEntries(names.map((name, i) => [name, decodeURIComponent(found[i + 1])]));
      return { route, params };
    }
  }
  return null;
}

function allowed(route) {
  if (route.role) return hasRole(route.role);
  if (route.signedIn) return currentUser() !== null;
  return true;
}

/** Renders the page the hash names. Called on hash changes and by navigate(). */
export async function render() {
  const mine = ++renderCount;
  for (const fn of leaving) fn();
  leaving = [];
  const { path, query } = location();
  const found = match(path);
  if (!found) {
    show('Page not found', [h('h1', {}, 'Page not found'), h('p', {}, 'There is no page at this address. '), h('a', { href: '#/' }, 'Go to the catalogue')]);
    return;
  }
  const { route, params } = found;
  if (!allowed(route)) {
    if (!currentUser()) {
      navigate(`/sign-in?next=${encodeURIComponent(path)}`);
      return;
    }
    show('Not allowed', [h('h1', {}, 'Not allowed'), h('p', {}, `This page needs the ${route.role} role.`)]);
    return;
  }
  const cleanups = [];
  const context = {
    main,
    params,
    query,
    user: currentUser(),
    navigate,
    announce,
    onLeave: (fn) => cleanups.push(fn),
    setTitle: (title) => {
      document.title = `${title} · Marquee`;
    },
    // True once the reader has moved on: long work checks it before touching the page.
    isStale: () => mine !== renderCount,
  };
  leaving = cleanups;
  document.title = `${route.title} · Marquee`;
  main.setAttribute('aria-busy', 'true');
  try {
    const page = await route.page();
    if (mine !== renderCount) return;
    main.replaceChildren();
    await page.render(context);
  } catch (error) {
    if (mine !== renderCount) return;
    replace(main, h('h1', {}, route.title), errorBox(error, 'This page could not be shown: '));
  } finally {
    if (mine === renderCount) main.removeAttribute('aria-busy');
  }
  if (mine === renderCount) focusHeading();
}

function show(title, children) {
  document.title = `${title} · Marquee`;
  replace(main, children);
  focusHeading();
}

/** Moves focus to the page's heading, so screen readers start at the new page. */
function focusHeading() {
  const heading = main.querySelector('h1') ?? main;
  heading.setAttribute('tabindex', '-1');
  heading.focus({ preventScroll: false });
}

/** Starts routing: `table` is routes.js's list, `container` the <main>. */
export function startRouter(table, container) {
  routes = table;
  main = container;
  window.addEventListener('hashchange', render);
  return render();
}
