// Your account: who you are, your roles, your passkeys (add one), your latest sign-ins.
import { h, replace, time, errorBox } from '../dom.js';
import { gql } from '../graphql.js';
import { addPasskey, passkeyProblem, passkeysSupported } from '../passkeys.js';
import { busy } from '../forms.js';
import { refreshSession } from '../session.js';

const ME = `query Account {
  me { username email roles passkeys logins(first: 20) { at method succeeded ip } }
}`;

export async function render({ main, announce, isStale }) {
  const details = h('div', {});
  const passkeyStatus = h('p', { role: 'status', class: 'status' });
  const passkeyCount = h('p', { id: 'passkey-count' });
  const addButton = h('button', { type: 'button', id: 'add-passkey', on: { click: onAdd } }, 'Add a passkey');
  const logins = h('div', {});

  async function load() {
    const { me } = await gql(ME);
    if (isStale() || !me) return;
    replace(details, h('dl', { class: 'facts' },
      h('dt', {}, 'Username'), h('dd', {}, me.username),
      h('dt', {}, 'Email'), h('dd', {}, me.email),
      h('dt', {}, 'Roles'), h('dd', {}, me.roles.join(', ') || 'none')));
    replace(passkeyCount, me.passkeys === 1 ? 'You have 1 passkey.' : `You have ${me.passkeys} passkeys.`);
    replace(logins, me.logins.length === 0
      ? h('p', {}, 'No sign-ins yet.')
      : h('div', { class: 'table-scroll' }, h('table', {},
        h('caption', { class: 'visually-hidden' }, 'Your latest sign-ins, newest first'),
        h('thead', {}, h('tr', {}, ['When', 'Method', 'Result', 'Address'].map((label) => h('th', { scope: 'col' }, label)))),
        h('tbody', {}, me.logins.map((login) => h('tr', {},
          h('td', {}, time(login.at)),
          h('td', {}, login.method),
          h('td', {}, login.succeeded ? 'succeeded' : 'failed'),
          h('td', {}, login.ip ?? '—')))))));
  }

  async function onAdd() {
    replace(passkeyStatus, '');
    await busy(addButton, async () => {
      try {
        await addPasskey();
        await Promise.all([load(), refreshSession()]);
        replace(passkeyStatus, 'Passkey added. You can now sign in with it.');
        announce('Passkey added.');
      } catch (error) {
        replace(passkeyStatus, errorBox(error.status === undefined ? { message: passkeyProblem(error) } : error));
      }
    });
  }

  main.append(
    h('h1', {}, 'Your account'),
    details,
    h('section', { 'aria-labelledby': 'passkeys-heading' },
      h('h2', { id: 'passkeys-heading' }, 'Passkeys'),
      passkeyCount,
      passkeysSupported() ? addButton : h('p', {}, 'This browser does not support passkeys.'),
      passkeyStatus),
    h('section', { 'aria-labelledby': 'logins-heading' },
      h('h2', { id: 'logins-heading' }, 'Your sign-ins'),
      logins),
  );
  await load();
}
