// Labelled form fields whose errors sit beside them (and are announced), and the mapping of
// the command API's `{error: {code, message, field}}` onto them.
import { h, text, uid } from './dom.js';

/**
 * field({ name, label, type, value, hint, autocomplete, multiline, options, ...attributes })
 * → { name, element (the wrapper to insert), input, value(), setError(message), clearError() }
 * `options` makes a <select> of [value, label] pairs; `multiline` a <textarea>.
 */
export function field({ name, label, type = 'text', value = '', hint, multiline, options, ...attributes }) {
  const id = uid(name);
  const hintId = hint ? `${id}-hint` : undefined;
  const errorId = `${id}-error`;
  const common = { id, name, 'aria-describedby': [hintId, errorId].filter(Boolean).join(' '), ...attributes };
  let input;
  if (options) {
    input = h('select', common, options.map(([optionValue, optionLabel]) =>
      h('option', { value: optionValue, selected: String(optionValue) === String(value) }, optionLabel)));
  } else if (multiline) {
    input = h('textarea', { ...common, rows: 4, value });
  } else {
    input = h('input', { ...common, type, value: type === 'file' ? undefined : value });
  }
  const error = h('p', { id: errorId, class: 'field-error', hidden: true });
  const element = h('div', { class: 'field' },
    h('label', { for: id }, label),
    hint ? h('p', { id: hintId, class: 'hint' }, hint) : null,
    input,
    error);
  return {
    name,
    element,
    input,
    value: () => input.value,
    setError(message) {
      text(error, message);
      error.hidden = false;
      input.setAttribute('aria-invalid', 'true');
    },
    clearError() {
      text(error, '');
      error.hidden = true;
      input.removeAttribute('aria-invalid');
    },
  };
}

/** Field names the API reports that mean another field of the form. */
const FIELD_ALIASES = { genre: 'genres' };

/**
 * Shows an API error at its field when the form has one (and focuses it), otherwise in
 * `formError` (a role=alert element). Returns true when it landed on a field.
 */
export function showError(error, fields, formError) {
  const name = FIELD_ALIASES[error?.field] ?? error?.field;
  const target = fields.find((f) => f.name === name);
  if (target) {
    target.setError(error.message);
    target.input.focus();
    return true;
  }
  text(formError, error?.message ?? 'Something went wrong.');
  formError.hidden = false;
  formError.focus?.();
  return false;
}

/** Clears every field error and the form's own. */
export function clearErrors(fields, formError) {
  for (const f of fields) f.clearError();
  text(formError, '');
  formError.hidden = true;
}

/** A role=alert paragraph for errors that belong to no field. */
export function formErrorBox() {
  return h('p', { class: 'error-box', role: 'alert', tabindex: '-1', hidden: true });
}

/** Runs `work` with `button` disabled and labelled busy; restores it after. */
export async function busy(button, work) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    text(button, label);
  }
}
