// Sign in with a password or a passkey; then back where the reader was going (?next=).
import { h } from '../dom.js';
import { busy, clearErrors, field, formErrorBox, showError } from '../forms.js';
import { passkeyProblem, passkeysSupported, signInWithPasskey } from '../passkeys.js';
import { sessionStarted, signIn } from '../session.js';

export async function render({ main, navigate, announce, query }) {
  const next = query.get('next');
  const destination = next && next.startsWith('/') && !next.startsWith('//') ? next : '/';
  const username = field({ name: 'username', label: 'Username', autocomplete: 'username webauthn', autocapitalize: 'none', spellcheck: 'false' });
  const password = field({ name: 'password', label: 'Password', type: 'password', autocomplete: 'current-password' });
  const fields = [username, password];
  const formError = formErrorBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const passkeyButton = h('button', { type: 'button', id: 'passkey-sign-in', on: { click: onPasskey } }, 'Sign in with a passkey');

  async function done() {
    const user = await sessionStarted();
    announce(`Signed in as ${user?.username ?? 'you'}.`);
    navigate(destination);
  }

  async function onSubmit(event) {
    event.preventDefault();
    clearErrors(fields, formError);
    await busy(submit, async () => {
      try {
        await signIn(username.value().trim(), password.value());
        await done();
      } catch (error) {
        showError(error, fields, formError);
      }
    });
  }

  async function onPasskey() {
    clearErrors(fields, formError);
    await busy(passkeyButton, async () => {
      try {
        await signInWithPasskey(username.value().trim() || undefined);
        await done();
      } catch (error) {
        showError(error.status === undefined ? { message: passkeyProblem(error) } : error, fields, formError);
      }
    });
  }

  main.append(
    h('h1', {}, 'Sign in'),
    h('form', { novalidate: true, on: { submit: onSubmit } },
      formError, username.element, password.element, h('p', {}, submit)),
    h('section', { class: 'passkey-box', 'aria-labelledby': 'passkey-heading' },
      h('h2', { id: 'passkey-heading' }, 'Or use a passkey'),
      passkeysSupported()
        ? [h('p', { class: 'hint' }, 'Your device asks for your fingerprint, face or PIN. Give your username above, or leave it empty to pick a passkey stored on this device.'), passkeyButton]
        : h('p', {}, 'This browser does not support passkeys.')),
    h('p', {}, 'New here? ', h('a', { href: '#/register' }, 'Create an account')),
  );
}
