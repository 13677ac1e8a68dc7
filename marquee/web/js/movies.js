// What the catalogue, movie and form pages share: the fields asked for and a poster card.
import { h } from './dom.js';

export const MOVIE_FIELDS = `id title year director genres description posterUrl thumbnailUrl
  addedBy addedAt updatedAt version removed`;

export const MOVIE_QUERY = `query Movie($id: ID!) { movie(id: $id) { ${MOVIE_FIELDS} } }`;

/** A poster image, or a lettered placeholder when the movie has none. */
export function poster(movie, { thumbnail = true, alt = '' } = {}) {
  const url = thumbnail ? movie.thumbnailUrl ?? movie.posterUrl : movie.posterUrl;
  if (url) return h('img', { class: 'poster', src: url, alt, loading: 'lazy', decoding: 'async' });
  return h('div', { class: 'poster poster-missing', 'aria-hidden': 'true' }, (movie.title.trim()[0] ?? '?').toUpperCase());
}

/** A catalogue card linking to the movie page. */
export function movieCard(movie) {
  return h('li', { class: 'card', dataset: { movieId: movie.id } },
    h('a', { href: `#/movies/${encodeURIComponent(movie.id)}` },
      poster(movie),
      h('span', { class: 'card-title' }, movie.title),
      h('span', { class: 'card-meta' }, `${movie.year} · ${movie.director}`)));
}
