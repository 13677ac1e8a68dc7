// The only way the UI builds elements. Data always becomes text nodes or attribute values,
// never markup: no innerHTML, no event-handler or style attributes (the CSP forbids them too).

const REFUSED_ATTRIBUTES = /^(on|style$|srcdoc$|innerhtml$|outerhtml$)/i;

/**
 * h('a', { href: '#/', class: 'brand', on: { click } }, 'Marquee', child, [more])
 * Props: `on` (event listeners), `class` (string or array, falsy entries dropped), `dataset`,
 * `value`/`checked`/`disabled`/`selected`/`hidden` (set as properties), anything else as an
 * attribute (true → present, false/null/undefined → absent). URLs in href/src/action must be
 * relative, http(s), blob: or data:image.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'on') {
      for (const [type, listener] of Object.entries(value)) el.addEventListener(type, listener);
    } else if (key === 'class') {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (['value', 'checked', 'disabled', 'selected', 'hidden'].includes(key)) {
      el[key] = value;
    } else if (REFUSED_ATTRIBUTES.test(key)) {
      throw new Error(`h(): the attribute ${key} is not allowed`);
    } else if (key === 'href' || key === 'src' || key === 'action') {
      el.setAttribute(key, safeUrl(value));
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends children: nodes as they are, strings and numbers as text, arrays flattened. */
export function append(parent, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replaces everything in `parent` with `children`. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** Sets the text of an element (the same as textContent: never parsed). */
export function text(el, value) {
  el.textContent = value ?? '';
  return el;
}

const SAFE_URL = /^(#|\/(?!\/)|\.\/|https?:|blob:|data:image\/(png|jpeg|webp|gif);)/i;

/** `url` if it is a kind the UI links to or loads, else a harmless `#`. */
export function safeUrl(url) {
  const value = String(url);
  return SAFE_URL.test(value) ? value : '#';
}

const DATE_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** A <time> element showing an RFC 3339 timestamp in the reader's locale. */
export function time(iso) {
  const date = new Date(iso);
  return h('time', { datetime: iso }, Number.isNaN(date.getTime()) ? iso : DATE_TIME.format(date));
}

/** A message box for an error (an ApiError, GraphQLError or anything thrown). */
export function errorBox(error, prefix = '') {
  return h('p', { class: 'error-box', role: 'alert' }, prefix, messageOf(error));
}

/** The text to show for anything thrown. */
export function messageOf(error) {
  if (error && typeof error.message === 'string' && error.message) return error.message;
  return 'Something went wrong.';
}

/** A unique id for labels, hints and error messages. */
let counter = 0;
export function uid(prefix = 'id') {
  counter += 1;
  return `${prefix}-${counter}`;
}
