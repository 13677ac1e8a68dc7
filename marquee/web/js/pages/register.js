// Register: username, email, password; then signed in and on to the account page.
import { api } from '../api.js';
import { h } from '../dom.js';
import { busy, clearErrors, field, formErrorBox, showError } from '../forms.js';
import { signIn } from '../session.js';

export async function render({ main, navigate, announce }) {
  const fields = [
    field({ name: 'username', label: 'Username', autocomplete: 'username', hint: '3 to 32 characters: letters a–z, digits, _ - and .', required: true, autocapitalize: 'none', spellcheck: 'false' }),
    field({ name: 'email', label: 'Email', type: 'email', autocomplete: 'email', required: true }),
    field({ name: 'password', label: 'Password', type: 'password', autocomplete: 'new-password', hint: '10 to 128 characters.', required: true }),
  ];
  const [username, email, password] = fields;
  const formError = formErrorBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create account');
  const form = h('form', { novalidate: true, on: { submit: onSubmit } },
    formError, fields.map((f) => f.element), h('p', {}, submit));

  async function onSubmit(event) {
    event.preventDefault();
    clearErrors(fields, formError);
    await busy(submit, async () => {
      try {
        await api('POST', '/api/users', {
          body: { username: username.value().trim(), email: email.value().trim(), password: password.value() },
        });
        await signIn(username.value().trim(), password.value());
        announce('Your account is ready and you are signed in.');
        navigate('/account');
      } catch (error) {
        showError(error, fields, formError);
      }
    });
  }

  main.append(
    h('h1', {}, 'Register'),
    form,
    h('p', {}, 'Have an account? ', h('a', { href: '#/sign-in' }, 'Sign in')),
  );
}
