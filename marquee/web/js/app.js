// Start-up: who is signed in, the menu, then the router.
import { h, replace } from './dom.js';
import { nav, routes } from './routes.js';
import { announce, location, navigate, startRouter } from './router.js';
import { currentUser, hasRole, onSessionChange, refreshSession, signOut } from './session.js';

const navElement = document.getElementById('nav');
const main = document.getElementById('main');

function visible(link, user) {
  if (link.anonymous) return user === null;
  if (link.signedIn) return user !== null;
  if (link.role) return hasRole(link.role);
  return true;
}

function currentHref() {
  return `#${location().path}`;
}

function drawNav() {
  const user = currentUser();
  const here = currentHref();
  const items = nav.filter((link) => visible(link, user)).map((link) =>
    h('li', {}, h('a', { href: link.href, 'aria-current': link.href === here ? 'page' : undefined }, link.label)));
  if (user) {
    items.push(h('li', { class: 'nav-user' },
      h('span', { class: 'signed-in-as' }, 'Signed in as ', h('strong', {}, user.username)),
      h('button', { type: 'button', class: 'link-button', id: 'sign-out', on: { click: onSignOut } }, 'Sign out')));
  }
  replace(navElement, h('ul', {}, items));
}

async function onSignOut() {
  try {
    await signOut();
    announce('You are signed out.');
  } finally {
    navigate('/');
  }
}

document.getElementById('skip-link').addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});

onSessionChange(drawNav);
window.addEventListener('hashchange', drawNav);

try {
  await refreshSession();
} catch {
  // The catalogue still works anonymously; pages say what failed.
}
drawNav();
await startRouter(routes, main);
