// The auditor's event log: filters (kept in the address), keyset pages, each event expandable
// to its payload, metadata and hashes (shown as text), a chain indicator per row, new events
// live, ledger verification, and export of the filtered log to JSON Lines or CSV.
import { h, replace, time, errorBox, text } from '../dom.js';
import { field, busy } from '../forms.js';
import { gql, subscribe } from '../graphql.js';

export const EVENT_FIELDS = 'position aggregateType aggregateId sequence eventType schemaVersion payload metadata recordedAt hash prevHash';

const EVENTS = `query AuditEvents($first: Int!, $after: String, $aggregateId: ID, $aggregateType: String, $eventTypes: [String!], $from: DateTime, $to: DateTime) {
  events(first: $first, after: $after, aggregateId: $aggregateId, aggregateType: $aggregateType, eventTypes: $eventTypes, from: $from, to: $to) {
    edges { node { ${EVENT_FIELDS} } }
    pageInfo { hasNextPage endCursor }
  }
}`;

const LEDGER = `query Ledger($incremental: Boolean!) {
  ledger(incremental: $incremental) { intact checkedEvents firstBrokenPosition lastCheckpoint head problems { position kind detail } }
}`;

const EVENT_TYPES = ['UserRegistered', 'PasswordLoginSucceeded', 'LoginFailed', 'PasskeyRegistered', 'PasskeyLoginSucceeded',
  'AccountLocked', 'AccountUnlocked', 'RoleGranted', 'MovieAdded', 'MovieDetailsUpdated', 'PosterAttached', 'MovieRemoved'];

const PAGE_SIZE = 50;
const EXPORT_PAGE = 100;

/** JSON pretty-printed for reading; it is always put in the page as text. */
export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

/** The `events` arguments from the address (#/audit?aggregateId=…&eventType=…&from=…). */
function filterFrom(query) {
  const filter = {};
  for (const name of ['aggregateId', 'aggregateType']) {
    const value = query.get(name)?.trim();
    if (value) filter[name] = value;
  }
  const types = query.getAll('eventType').filter((t) => EVENT_TYPES.includes(t));
  if (types.length) filter.eventTypes = types;
  for (const name of ['from', 'to']) {
    const date = new Date(query.get(name) ?? '');
    if (query.get(name) && !Number.isNaN(date.getTime())) filter[name] = date.toISOString();
  }
  return filter;
}

/** A datetime-local input's value for an ISO instant, in the reader's time zone. */
function localInput(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function matches(event, filter) {
  if (filter.aggregateId && event.aggregateId !== filter.aggregateId) return false;
  if (filter.aggregateType && event.aggregateType !== filter.aggregateType) return false;
  if (filter.eventTypes && !filter.eventTypes.includes(event.eventType)) return false;
  if (filter.from && event.recordedAt < filter.from) return false;
  if (filter.to && event.recordedAt > filter.to) return false;
  return true;
}

/** Every event the filter matches, a page at a time (for exports). */
async function allEvents(filter, onProgress) {
  const events = [];
  let after = null;
  for (;;) {
    const { events: page } = await gql(EVENTS, { ...filter, first: EXPORT_PAGE, after });
    events.push(...page.edges.map((e) => e.node));
    onProgress(events.length);
    if (!page.pageInfo.hasNextPage) return events;
    after = page.pageInfo.endCursor;
  }
}

// The columns of `marquee events --format csv`, less the event id GraphQL does not expose.
const CSV_COLUMNS = ['position', 'aggregateType', 'aggregateId', 'sequence', 'eventType', 'schemaVersion', 'payload', 'metadata', 'recordedAt', 'prevHash', 'hash'];

function csvField(value) {
  let cell = typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value ?? '');
  // A cell a spreadsheet would run as a formula starts with a quote instead.
  if (/^[=+\-@\t\r]/.test(cell)) cell = `'${cell}`;
  return /[",\n\r]/.test(cell) ? `"${cell.replace(/"/g, '""')}"` : cell;
}

export function toCsv(events) {
  return [CSV_COLUMNS.join(','), ...events.map((e) => CSV_COLUMNS.map((c) => csvField(e[c])).join(','))].join('\r\n') + '\r\n';
}

export function toJsonLines(events) {
  return events.map((e) => JSON.stringify(e)).join('\n') + (events.length ? '\n' : '');
}

/** Offers `content` as a file download (an object URL, revoked once the click is handled). */
function download(name, type, content) {
  const url = URL.createObjectURL(new Blob([content], { type }));
  const link = h('a', { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

export async function render({ main, query, announce, onLeave, isStale }) {
  const filter = filterFrom(query);
  const fields = {
    aggregateType: field({ name: 'aggregateType', label: 'Aggregate type', options: [['', 'Any'], ['Movie', 'Movie'], ['User', 'User']], value: filter.aggregateType ?? '' }),
    aggregateId: field({ name: 'aggregateId', label: 'Aggregate id', value: filter.aggregateId ?? '', hint: 'A movie\'s or user\'s id.', autocomplete: 'off' }),
    from: field({ name: 'from', label: 'From', type: 'datetime-local', value: localInput(filter.from) }),
    to: field({ name: 'to', label: 'To', type: 'datetime-local', value: localInput(filter.to) }),
  };
  const typeBoxes = EVENT_TYPES.map((type) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name: 'eventType', value: type, checked: Boolean(filter.eventTypes?.includes(type)) }), ` ${type}`));

  const rows = h('tbody', {});
  const eventTable = h('div', { class: 'table-scroll' }, h('table', { id: 'events', class: 'events' },
    h('caption', {}, Object.keys(filter).length ? 'Events matching the filters, oldest first' : 'Every event, oldest first'),
    h('thead', {}, h('tr', {}, ['Position', 'Recorded', 'Event', 'Aggregate', 'Seq.', 'Chain', 'Details'].map((label) => h('th', { scope: 'col' }, label)))),
    rows));
  const count = h('p', { id: 'event-count', role: 'status' });
  const more = h('button', { type: 'button', id: 'more-events', hidden: true, on: { click: () => loadPage(true) } }, 'Load more events');
  const problems = h('div', {});
  const exportStatus = h('p', { role: 'status', class: 'status', id: 'export-status' });
  const ledgerResult = h('div', { id: 'ledger-result', role: 'status', 'aria-live': 'polite' });

  let endCursor = null;
  let hasNextPage = false;
  const byStream = new Map(); // "type/id#sequence" → event, for the chain indicator
  const shown = [];

  function chainOf(event) {
    if (event.sequence === 1) {
      return event.prevHash == null ? ['start', 'Start of stream'] : ['broken', 'Broken: the first event names a previous hash'];
    }
    const previous = byStream.get(`${event.aggregateType}/${event.aggregateId}#${event.sequence - 1}`);
    if (!previous) return ['unknown', 'Previous event not shown'];
    return previous.hash === event.prevHash
      ? ['linked', `Linked to #${previous.position}`]
      : ['broken', `Broken: does not match #${previous.position}`];
  }

  function row(event) {
    const [state, label] = chainOf(event);
    const detailsId = `event-${event.position}-details`;
    const toggle = h('button', {
      type: 'button',
      class: 'link-button',
      'aria-expanded': 'false',
      'aria-controls': detailsId,
      'aria-label': `Details of event ${event.position}`,
      on: {
        click: () => {
          const open = toggle.getAttribute('aria-expanded') !== 'true';
          toggle.setAttribute('aria-expanded', String(open));
          details.hidden = !open;
          text(toggle, open ? 'Hide' : 'Show');
        },
      },
    }, 'Show');
    const aggregate = event.aggregateType === 'Movie'
      ? h('a', { href: `#/audit/movies/${encodeURIComponent(event.aggregateId)}`, 'aria-label': `History of movie ${event.aggregateId}` }, `Movie ${event.aggregateId}`)
      : `${event.aggregateType} ${event.aggregateId}`;
    const line = h('tr', { dataset: { position: String(event.position), eventType: event.eventType } },
      h('td', {}, String(event.position)),
      h('td', {}, time(event.recordedAt)),
      h('td', {}, event.eventType, event.schemaVersion > 1 ? h('span', { class: 'hint' }, ` (schema v${event.schemaVersion})`) : null),
      h('td', { class: 'aggregate' }, aggregate),
      h('td', {}, String(event.sequence)),
      h('td', { class: ['chain', `chain-${state}`], dataset: { chain: state } },
        h('span', { 'aria-hidden': 'true' }, state === 'linked' ? '✓ ' : state === 'broken' ? '✗ ' : state === 'start' ? '◆ ' : '… '), label),
      h('td', {}, toggle));
    const details = h('tr', { id: detailsId, class: 'event-details', hidden: true },
      h('td', { colspan: 7 },
        h('div', { class: 'event-detail-grid' },
          h('div', {}, h('h3', {}, 'Payload'), h('pre', { class: 'json payload' }, pretty(event.payload))),
          h('div', {}, h('h3', {}, 'Metadata'), h('pre', { class: 'json metadata' }, pretty(event.metadata)))),
        h('dl', { class: 'facts hashes' },
          h('dt', {}, 'Hash'), h('dd', {}, h('code', {}, event.hash)),
          h('dt', {}, 'Previous hash'), h('dd', {}, h('code', {}, event.prevHash ?? 'none (first event of the stream)')))));
    return [line, details];
  }

  function add(all, focusFirst) {
    // A live event can arrive while its page is loading.
    const events = all.filter((e) => !shown.some((s) => s.position === e.position));
    for (const event of events) {
      byStream.set(`${event.aggregateType}/${event.aggregateId}#${event.sequence}`, event);
      shown.push(event);
    }
    const made = events.map(row);
    rows.append(...made.flat());
    if (focusFirst) made[0]?.[0].querySelector('button')?.focus();
    replace(count, shown.length === 0 ? 'No events match.' : `Showing ${shown.length} ${shown.length === 1 ? 'event' : 'events'}${hasNextPage ? '; more below' : ''}.`);
  }

  async function loadPage(append) {
    replace(problems);
    try {
      const { events } = await gql(EVENTS, { ...filter, first: PAGE_SIZE, after: append ? endCursor : null });
      if (isStale()) return;
      endCursor = events.pageInfo.endCursor;
      hasNextPage = events.pageInfo.hasNextPage;
      more.hidden = !hasNextPage;
      add(events.edges.map((e) => e.node), append);
    } catch (error) {
      replace(problems, errorBox(error, 'The events could not be loaded: '));
    }
  }

  function apply(event) {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const [name, f] of Object.entries(fields)) {
      const value = f.value().trim();
      if (!value) continue;
      params.set(name, name === 'from' || name === 'to' ? new Date(value).toISOString() : value);
    }
    for (const box of typeBoxes.map((label) => label.querySelector('input'))) {
      if (box.checked) params.append('eventType', box.value);
    }
    const search = params.toString();
    window.location.hash = search ? `#/audit?${search}` : '#/audit';
  }

  async function verify(incremental, button) {
    await busy(button, async () => {
      replace(ledgerResult, h('p', {}, 'Verifying…'));
      try {
        const { ledger } = await gql(LEDGER, { incremental });
        if (isStale()) return;
        ledgerResult.dataset.intact = String(ledger.intact);
        const verdict = ledger.intact
          ? `Intact: ${ledger.checkedEvents} events checked${incremental ? ' since the last checkpoint' : ''}.`
          : `Broken at position ${ledger.firstBrokenPosition}: ${ledger.problems.length} problem(s) found.`;
        replace(ledgerResult,
          h('p', { class: ledger.intact ? 'ledger-ok' : 'ledger-broken', id: 'ledger-verdict' }, verdict),
          h('dl', { class: 'facts' },
            h('dt', {}, 'Checked'), h('dd', {}, incremental ? 'events after the last checkpoint' : 'the whole log'),
            h('dt', {}, 'Events checked'), h('dd', {}, String(ledger.checkedEvents)),
            h('dt', {}, 'Head'), h('dd', {}, String(ledger.head)),
            h('dt', {}, 'Last checkpoint'), h('dd', {}, ledger.lastCheckpoint == null ? 'none yet' : String(ledger.lastCheckpoint)),
            h('dt', {}, 'First broken position'), h('dd', {}, ledger.firstBrokenPosition == null ? 'none' : String(ledger.firstBrokenPosition))),
          ledger.problems.length ? h('ul', { class: 'ledger-problems' }, ledger.problems.map((p) => h('li', {}, `#${p.position} ${p.kind}: ${p.detail}`))) : null);
        announce(verdict);
      } catch (error) {
        replace(ledgerResult, errorBox(error, 'The ledger could not be verified: '));
      }
    });
  }

  async function exportAs(format, button) {
    await busy(button, async () => {
      replace(exportStatus, 'Collecting events…');
      try {
        const events = await allEvents(filter, (n) => replace(exportStatus, `Collecting events… ${n}`));
        if (isStale()) return;
        const first = events[0]?.position ?? 0;
        const last = events[events.length - 1]?.position ?? 0;
        const name = `marquee-events-${first}-${last}.${format}`;
        if (format === 'jsonl') download(name, 'application/x-ndjson', toJsonLines(events));
        else download(name, 'text/csv', toCsv(events));
        replace(exportStatus, `Exported ${events.length} ${events.length === 1 ? 'event' : 'events'} to ${name}.`);
      } catch (error) {
        replace(exportStatus, errorBox(error, 'The export failed: '));
      }
    });
  }

  const fullButton = h('button', { type: 'button', id: 'verify-ledger', class: 'primary', on: { click: () => verify(false, fullButton) } }, 'Verify the whole ledger');
  const incrementalButton = h('button', { type: 'button', id: 'verify-incremental', on: { click: () => verify(true, incrementalButton) } }, 'Verify since the last checkpoint');
  const jsonlButton = h('button', { type: 'button', id: 'export-jsonl', on: { click: () => exportAs('jsonl', jsonlButton) } }, 'Download JSON Lines');
  const csvButton = h('button', { type: 'button', id: 'export-csv', on: { click: () => exportAs('csv', csvButton) } }, 'Download CSV');
  const movieId = field({ name: 'movieId', label: 'Movie id', autocomplete: 'off' });

  main.append(
    h('h1', {}, 'Audit'),
    h('section', { 'aria-labelledby': 'ledger-heading' },
      h('h2', { id: 'ledger-heading' }, 'Ledger'),
      h('p', {}, 'Recomputes every stream\'s hash chain and the signed checkpoints, as the marquee verify command does.'),
      h('p', { class: 'form-actions' }, fullButton, incrementalButton),
      ledgerResult),
    h('section', { 'aria-labelledby': 'movie-history-heading' },
      h('h2', { id: 'movie-history-heading' }, 'A movie\'s history'),
      h('form', { class: 'inline-form', on: { submit: (event) => {
        event.preventDefault();
        const id = movieId.value().trim();
        if (id) window.location.hash = `#/audit/movies/${encodeURIComponent(id)}`;
      } } }, movieId.element, h('p', { class: 'form-actions' }, h('button', { type: 'submit' }, 'Show its history')))),
    h('section', { 'aria-labelledby': 'events-heading' },
      h('h2', { id: 'events-heading' }, 'Event log'),
      h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter events', on: { submit: apply } },
        Object.values(fields).map((f) => f.element),
        h('fieldset', { class: 'event-types' }, h('legend', {}, 'Event types (none ticked: all)'), typeBoxes),
        h('p', { class: 'filter-actions' },
          h('button', { type: 'submit', class: 'primary' }, 'Apply filters'),
          Object.keys(filter).length ? h('a', { href: '#/audit' }, 'Clear filters') : null)),
      h('p', { class: 'form-actions export-actions' }, jsonlButton, csvButton),
      exportStatus,
      count, problems, eventTable, h('p', {}, more)),
  );

  onLeave(subscribe(`subscription AuditLive($aggregateType: String) { eventAppended(aggregateType: $aggregateType) { ${EVENT_FIELDS} } }`,
    { aggregateType: filter.aggregateType ?? null }, {
      next: (data) => {
        const event = data?.eventAppended;
        // Only at the end of the log: with pages still to load, "Load more" brings it in order.
        if (!event || hasNextPage || !matches(event, filter) || shown.some((e) => e.position === event.position)) return;
        add([event], false);
        rows.lastElementChild.previousElementSibling?.classList.add('row-new');
        announce(`New event ${event.position}: ${event.eventType}`);
      },
      error: (error) => replace(problems, errorBox(error, 'Live updates stopped: ')),
    }));
  await loadPage(false);
}
