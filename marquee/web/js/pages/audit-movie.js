// A movie's history for auditors: its events in order as a timeline; picking one shows the
// movie as it stood at that version (`movieAsOf`, replayed from the stream), and a date and
// time shows it as it stood then.
import { h, replace, time, errorBox, text } from '../dom.js';
import { field, busy } from '../forms.js';
import { gql } from '../graphql.js';
import { EVENT_FIELDS, pretty } from './audit.js';

const HISTORY = `query MovieHistory($id: ID!, $after: String) {
  events(first: 100, after: $after, aggregateId: $id, aggregateType: "Movie") {
    edges { node { ${EVENT_FIELDS} } }
    pageInfo { hasNextPage endCursor }
  }
}`;

const AS_OF = `query MovieAsOf($id: ID!, $version: Int, $at: DateTime) {
  movieAsOf(id: $id, version: $version, at: $at) { id title year director genres description posterUrl addedBy addedAt updatedAt version removed }
}`;

function stateView(movie, what) {
  if (!movie) return h('p', { id: 'state-empty' }, `The movie did not exist yet ${what}.`);
  return h('dl', { class: 'facts', id: 'state-facts' },
    h('dt', {}, 'Version'), h('dd', { dataset: { field: 'version' } }, String(movie.version)),
    h('dt', {}, 'Title'), h('dd', { dataset: { field: 'title' } }, movie.title),
    h('dt', {}, 'Year'), h('dd', { dataset: { field: 'year' } }, String(movie.year)),
    h('dt', {}, 'Director'), h('dd', { dataset: { field: 'director' } }, movie.director),
    h('dt', {}, 'Genres'), h('dd', { dataset: { field: 'genres' } }, movie.genres.join(', ') || 'none'),
    h('dt', {}, 'Description'), h('dd', { class: 'description', dataset: { field: 'description' } }, movie.description || '—'),
    h('dt', {}, 'Poster'), h('dd', {}, movie.posterUrl ? 'attached' : 'none'),
    h('dt', {}, 'Added by'), h('dd', {}, movie.addedBy),
    h('dt', {}, 'Last changed'), h('dd', {}, time(movie.updatedAt)),
    h('dt', {}, 'Removed'), h('dd', { dataset: { field: 'removed' } }, movie.removed ? 'yes' : 'no'));
}

export async function render({ main, params, announce, setTitle, isStale }) {
  const { id } = params;
  const heading = h('h1', {}, 'Movie history');
  const timeline = h('ol', { class: 'timeline', id: 'timeline', 'aria-label': 'Events of this movie, oldest first' });
  const stateHeading = h('h2', { id: 'state-heading' }, 'State');
  const state = h('div', { id: 'state', role: 'region', 'aria-labelledby': 'state-heading', 'aria-live': 'polite' });
  const at = field({ name: 'at', label: 'Date and time', type: 'datetime-local', step: 1, hint: 'In your time zone.' });
  const atButton = h('button', { type: 'submit' }, 'Show the state then');
  const problems = h('div', {});
  const buttons = [];

  async function show(variables, what, button) {
    try {
      const { movieAsOf } = await gql(AS_OF, { id, ...variables });
      if (isStale()) return;
      for (const b of buttons) b.setAttribute('aria-pressed', String(b === button));
      state.dataset.version = movieAsOf ? String(movieAsOf.version) : '0';
      text(stateHeading, `State ${what}`);
      replace(state, stateView(movieAsOf, what));
      announce(`Showing the movie ${what}.`);
    } catch (error) {
      replace(state, errorBox(error, 'The state could not be replayed: '));
    }
  }

  main.append(heading,
    h('p', {}, h('a', { href: `#/audit?aggregateType=Movie&aggregateId=${encodeURIComponent(id)}` }, 'This movie in the event log'), ' · ',
      h('a', { href: `#/movies/${encodeURIComponent(id)}` }, 'Its catalogue page')),
    problems,
    h('div', { class: 'history' },
      h('section', { 'aria-labelledby': 'timeline-heading' },
        h('h2', { id: 'timeline-heading' }, 'Timeline'),
        timeline),
      h('section', { 'aria-labelledby': 'state-heading', class: 'state-panel' },
        stateHeading,
        h('form', { class: 'inline-form', on: { submit: async (event) => {
          event.preventDefault();
          const value = at.value();
          if (!value) {
            at.setError('Pick a date and time.');
            at.input.focus();
            return;
          }
          at.clearError();
          const instant = new Date(value);
          await busy(atButton, () => show({ at: instant.toISOString() }, `at ${instant.toLocaleString()}`, null));
        } } }, at.element, h('p', { class: 'form-actions' }, atButton)),
        state)));

  const events = [];
  let after = null;
  try {
    for (;;) {
      const { events: page } = await gql(HISTORY, { id, after });
      events.push(...page.edges.map((e) => e.node));
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
  } catch (error) {
    replace(problems, errorBox(error, 'The history could not be loaded: '));
    return;
  }
  if (isStale()) return;
  if (events.length === 0) {
    replace(timeline, h('li', {}, 'No events for this id: it is not a movie of this catalogue.'));
    return;
  }
  const title = events.reduce((found, e) => e.payload?.title ?? e.payload?.changes?.title ?? found, id);
  text(heading, `History of ${title}`);
  setTitle(`History of ${title}`);
  replace(timeline, events.map((event) => {
    const button = h('button', {
      type: 'button',
      'aria-pressed': 'false',
      dataset: { version: String(event.sequence) },
      on: { click: () => show({ version: event.sequence }, `at version ${event.sequence}`, button) },
    }, `State at version ${event.sequence}`);
    buttons.push(button);
    const actor = event.metadata?.actor;
    return h('li', { class: 'timeline-item', dataset: { sequence: String(event.sequence) } },
      h('p', { class: 'timeline-head' }, h('strong', {}, `Version ${event.sequence}: ${event.eventType}`)),
      h('p', { class: 'hint' }, time(event.recordedAt), ` · position ${event.position}`, typeof actor === 'string' ? ` · by ${actor}` : ''),
      h('details', {}, h('summary', {}, 'Payload'), h('pre', { class: 'json' }, pretty(event.payload))),
      button);
  }));
  const last = events[events.length - 1];
  at.input.value = '';
  await show({ version: last.sequence }, `at version ${last.sequence}`, buttons[buttons.length - 1]);
}
