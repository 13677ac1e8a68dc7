// The catalogue: a poster grid, search and filters (kept in the address), keyset pages
// ("Show more" follows the last cursor), and live updates from the `movieChanged` subscription.
import { h, replace, errorBox } from '../dom.js';
import { field } from '../forms.js';
import { gql, onLiveStatus, subscribe } from '../graphql.js';
import { MOVIE_FIELDS, movieCard } from '../movies.js';

const PAGE_SIZE = 24;

const MOVIES = `query Catalogue($first: Int!, $after: String, $filter: MovieFilter, $orderBy: MovieOrder) {
  movies(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
    totalCount
    edges { node { ${MOVIE_FIELDS} } }
    pageInfo { hasNextPage endCursor }
  }
}`;

const CHANGES = `subscription CatalogueChanges { movieChanged { kind position movie { ${MOVIE_FIELDS} } } }`;

const ORDERS = [['ADDED_AT_DESC', 'Newest first'], ['TITLE_ASC', 'Title A–Z'], ['YEAR_DESC', 'Year, newest first']];

function filterFrom(query) {
  const filter = {};
  for (const name of ['search', 'genre', 'director']) {
    const value = query.get(name)?.trim();
    if (value) filter[name] = value;
  }
  const year = Number.parseInt(query.get('year') ?? '', 10);
  if (Number.isInteger(year)) filter.year = year;
  return filter;
}

/** Whether a movie that just changed belongs in the list as filtered (the server decides on reload). */
function matches(movie, filter) {
  const same = (a, b) => a.toLocaleLowerCase() === b.toLocaleLowerCase();
  if (filter.year !== undefined && movie.year !== filter.year) return false;
  if (filter.director && !same(movie.director, filter.director)) return false;
  if (filter.genre && !movie.genres.some((genre) => same(genre, filter.genre))) return false;
  if (filter.search) {
    const words = `${movie.title} ${movie.director} ${movie.description}`.toLocaleLowerCase().split(/[^\p{L}\p{N}]+/u);
    const wanted = filter.search.toLocaleLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean);
    if (!wanted.every((w) => words.some((word) => word.startsWith(w)))) return false;
  }
  return true;
}

export async function render({ main, query, announce, onLeave, isStale }) {
  const filter = filterFrom(query);
  const orderBy = ORDERS.some(([value]) => value === query.get('order')) ? query.get('order') : 'ADDED_AT_DESC';
  const fields = {
    search: field({ name: 'search', label: 'Search', type: 'search', value: filter.search ?? '', hint: 'Words from the title, director or description.' }),
    year: field({ name: 'year', label: 'Year', type: 'number', inputmode: 'numeric', value: filter.year ?? '', min: 1878, max: 2100 }),
    genre: field({ name: 'genre', label: 'Genre', value: filter.genre ?? '' }),
    director: field({ name: 'director', label: 'Director', value: filter.director ?? '' }),
    order: field({ name: 'order', label: 'Order', options: ORDERS, value: orderBy }),
  };
  const grid = h('ul', { class: 'poster-grid', id: 'movie-grid', 'aria-label': 'Movies' });
  const count = h('p', { class: 'result-count', id: 'result-count', role: 'status' });
  const more = h('button', { type: 'button', id: 'load-more', hidden: true, on: { click: () => loadPage(true) } }, 'Show more');
  const problems = h('div', {});
  const liveNote = h('p', { class: 'live-note', id: 'live-status' });
  const pending = h('p', { class: 'pending', hidden: true },
    'Other movies changed that may match your filters. ',
    h('button', { type: 'button', class: 'link-button', on: { click: () => loadPage(false) } }, 'Refresh the list'));
  let endCursor = null;
  let total = 0;

  function showCount() {
    const shown = grid.children.length;
    replace(count, total === 0 ? 'No movies match.' : `Showing ${shown} of ${total} ${total === 1 ? 'movie' : 'movies'}.`);
  }

  async function loadPage(append) {
    replace(problems);
    try {
      const { movies } = await gql(MOVIES, { first: PAGE_SIZE, after: append ? endCursor : null, filter, orderBy });
      if (isStale()) return;
      const cards = movies.edges.map((edge) => movieCard(edge.node));
      if (append) grid.append(...cards);
      else replace(grid, cards);
      endCursor = movies.pageInfo.endCursor;
      total = movies.totalCount;
      more.hidden = !movies.pageInfo.hasNextPage;
      pending.hidden = true;
      showCount();
      // Keyboard readers continue at the first new movie.
      if (append) cards[0]?.querySelector('a')?.focus();
    } catch (error) {
      replace(problems, errorBox(error, 'The catalogue could not be loaded: '));
    }
  }

  function onChange(change) {
    const { kind, movie } = change;
    const existing = grid.querySelector(`li[data-movie-id="${CSS.escape(movie.id)}"]`);
    if (kind === 'REMOVED') {
      if (existing) {
        existing.remove();
        total = Math.max(0, total - 1);
        showCount();
        announce(`Removed from the catalogue: ${movie.title}`);
      }
      return;
    }
    if (existing) {
      existing.replaceWith(movieCard(movie));
      announce(`Updated: ${movie.title}`);
      return;
    }
    if (kind !== 'ADDED' || !matches(movie, filter)) return;
    if (orderBy === 'ADDED_AT_DESC') {
      const card = movieCard(movie);
      card.classList.add('card-new');
      grid.prepend(card);
      total += 1;
      showCount();
    } else {
      pending.hidden = false;
    }
    announce(`New movie: ${movie.title}`);
  }

  function apply(event) {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const [name, f] of Object.entries(fields)) {
      const value = f.value().trim();
      if (value && !(name === 'order' && value === 'ADDED_AT_DESC')) params.set(name, value);
    }
    const search = params.toString();
    window.location.hash = search ? `#/?${search}` : '#/';
  }

  main.append(
    h('h1', {}, 'Catalogue'),
    h('form', { class: 'filters', role: 'search', 'aria-label': 'Search and filter movies', on: { submit: apply } },
      Object.values(fields).map((f) => f.element),
      h('p', { class: 'filter-actions' },
        h('button', { type: 'submit', class: 'primary' }, 'Search'),
        Object.keys(filter).length ? h('a', { href: '#/' }, 'Clear filters') : null)),
    liveNote, count, pending, problems, grid, h('p', {}, more),
  );

  onLeave(onLiveStatus((status) => {
    replace(liveNote, status === 'live' ? 'New and changed movies appear here as they happen.' : status === 'connecting' ? 'Connecting live updates…' : 'Live updates are off; reconnecting…');
    liveNote.dataset.status = status;
  }));
  onLeave(subscribe(CHANGES, {}, {
    next: (data) => data?.movieChanged && onChange(data.movieChanged),
    error: (error) => replace(problems, errorBox(error, 'Live updates stopped: ')),
  }));
  await loadPage(false);
}
