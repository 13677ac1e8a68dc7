// One movie: poster, details, who added it; kept current by `movieChanged(id)`.
import { h, replace, time, errorBox } from '../dom.js';
import { gql, subscribe } from '../graphql.js';
import { MOVIE_FIELDS, MOVIE_QUERY, poster } from '../movies.js';
import { hasRole } from '../session.js';

const CHANGES = `subscription MovieChanges($id: ID!) { movieChanged(id: $id) { kind movie { ${MOVIE_FIELDS} } } }`;

export async function render({ main, params, announce, onLeave, setTitle, isStale }) {
  const { movie } = await gql(MOVIE_QUERY, { id: params.id });
  if (isStale()) return;
  if (!movie) {
    main.append(h('h1', {}, 'Movie not found'), h('p', {}, 'No movie has this id. '), h('a', { href: '#/' }, 'Back to the catalogue'));
    return;
  }
  const heading = h('h1', {});
  const body = h('div', {});
  const notice = h('p', { class: 'notice', role: 'status' });

  function show(current) {
    setTitle(current.title);
    replace(heading, current.title);
    replace(body, h('div', { class: 'movie' },
      h('div', { class: 'movie-poster' }, poster(current, { thumbnail: false, alt: `Poster of ${current.title}` })),
      h('div', { class: 'movie-details' },
        current.removed ? h('p', { class: 'error-box' }, 'This movie was removed from the catalogue; its history is kept.') : null,
        h('dl', { class: 'facts' },
          h('dt', {}, 'Year'), h('dd', {}, String(current.year)),
          h('dt', {}, 'Director'), h('dd', {}, current.director),
          h('dt', {}, 'Genres'), h('dd', {}, current.genres.join(', ') || '—'),
          h('dt', {}, 'Added by'), h('dd', {}, current.addedBy, ' on ', time(current.addedAt)),
          h('dt', {}, 'Last changed'), h('dd', {}, time(current.updatedAt), ` (version ${current.version})`)),
        current.description ? h('p', { class: 'description' }, current.description) : null,
        hasRole('user') && !current.removed
          ? h('p', {}, h('a', { class: 'button', href: `#/movies/${encodeURIComponent(current.id)}/edit` }, 'Edit this movie'))
          : null)));
  }

  main.append(heading, notice, body, h('p', {}, h('a', { href: '#/' }, 'Back to the catalogue')));
  show(movie);
  onLeave(subscribe(CHANGES, { id: movie.id }, {
    next: (data) => {
      const change = data?.movieChanged;
      if (!change) return;
      show(change.movie);
      const what = change.kind === 'REMOVED' ? 'was just removed' : 'was just changed';
      replace(notice, `This movie ${what}; the page shows it as it is now.`);
      announce(`${change.movie.title} ${what}.`);
    },
    error: (error) => replace(notice, errorBox(error, 'Live updates stopped: ')),
  }));
}
