// Placeholder for the auditor's pages (issue 6, second part): replaced by the real page.
import { h } from '../dom.js';

export async function render({ main }) {
  main.append(h('h1', {}, 'Audit'), h('p', {}, 'The audit pages are not built yet.'));
}
