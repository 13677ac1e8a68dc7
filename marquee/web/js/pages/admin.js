// Placeholder for the admin dashboard (issue 6, second part): replaced by the real page.
import { h } from '../dom.js';

export async function render({ main }) {
  main.append(h('h1', {}, 'Admin dashboard'), h('p', {}, 'The admin dashboard is not built yet.'));
}
