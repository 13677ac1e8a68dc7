// Add a movie (#/movies/new) or edit one (#/movies/ID/edit). Messages from the API land at their
// field. Edits name the version they started from (If-Match); when someone else saved first
// (409 version_conflict) the page shows their values beside the reader's and lets them keep
// their own changes on top, or take the other version. A poster can be picked or dropped, is
// previewed, and uploads with a progress bar.
import { api, upload } from '../api.js';
import { h, replace, text, time } from '../dom.js';
import { busy, clearErrors, field, formErrorBox, showError } from '../forms.js';
import { gql } from '../graphql.js';
import { MOVIE_QUERY } from '../movies.js';

const POSTER_TYPES = ['image/png', 'image/jpeg', 'image/webp'];
const MAX_POSTER_BYTES = 5 * 1024 * 1024;
const NAMES = ['title', 'year', 'director', 'genres', 'description'];
const LABELS = { title: 'Title', year: 'Year', director: 'Director', genres: 'Genres', description: 'Description' };

/** A movie's details as the form shows them (strings). */
function formValues(movie) {
  return {
    title: movie.title,
    year: String(movie.year),
    director: movie.director,
    genres: movie.genres.join(', '),
    description: movie.description,
  };
}

function genreList(value) {
  return value.split(',').map((genre) => genre.trim()).filter(Boolean);
}

/** Equal as far as the API is concerned (genres compared as lists, text trimmed). */
function same(name, a, b) {
  if (name === 'genres') return genreList(a).join('\n') === genreList(b).join('\n');
  return a.trim() === b.trim();
}

function apiValue(name, value) {
  if (name === 'year') return Number(value);
  if (name === 'genres') return genreList(value);
  return value;
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

export async function render({ main, params, navigate, announce, onLeave, isStale }) {
  const editing = params.id !== undefined;
  let base = null;
  if (editing) {
    const { movie } = await gql(MOVIE_QUERY, { id: params.id });
    if (isStale()) return;
    if (!movie || movie.removed) {
      main.append(h('h1', {}, 'Movie not found'), h('p', {}, movie ? 'This movie was removed.' : 'No movie has this id.'));
      return;
    }
    base = movie;
  }
  const initial = base ? formValues(base) : { title: '', year: '', director: '', genres: '', description: '' };
  const fields = [
    field({ name: 'title', label: 'Title', value: initial.title, required: true }),
    field({ name: 'year', label: 'Year', value: initial.year, inputmode: 'numeric', required: true }),
    field({ name: 'director', label: 'Director', value: initial.director, required: true }),
    field({ name: 'genres', label: 'Genres', value: initial.genres, hint: 'Separate genres with commas.' }),
    field({ name: 'description', label: 'Description', value: initial.description, multiline: true }),
  ];
  const byName = Object.fromEntries(fields.map((f) => [f.name, f]));
  const posterField = field({ name: 'poster', label: 'Choose a poster image', type: 'file', accept: POSTER_TYPES.join(','), hint: 'PNG, JPEG or WebP, up to 5 MiB. You can also drop an image on this box.' });
  const allFields = [...fields, posterField];
  const preview = h('img', { class: 'poster-preview', alt: 'Preview of the chosen poster', hidden: true });
  const progress = h('progress', { max: '100', value: '0', id: 'upload-progress', 'aria-label': 'Poster upload' });
  const progressText = h('span', { class: 'progress-text' });
  const progressBox = h('p', { class: 'progress', hidden: true }, progress, ' ', progressText);
  const dropzone = h('div', { class: 'dropzone', id: 'poster-drop' }, posterField.element, preview, progressBox);
  const formError = formErrorBox();
  const conflictBox = h('section', { class: 'conflict', id: 'conflict', hidden: true, 'aria-labelledby': 'conflict-heading' });
  const submit = h('button', { type: 'submit', class: 'primary' }, editing ? 'Save changes' : 'Add movie');
  let chosen = null;
  let previewUrl = null;
  onLeave(() => previewUrl && URL.revokeObjectURL(previewUrl));

  function choose(file) {
    posterField.clearError();
    chosen = null;
    preview.hidden = true;
    if (!file) return;
    if (!POSTER_TYPES.includes(file.type)) {
      posterField.setError('Choose a PNG, JPEG or WebP image.');
      return;
    }
    if (file.size > MAX_POSTER_BYTES) {
      posterField.setError('The image is larger than 5 MiB.');
      return;
    }
    chosen = file;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
    preview.src = previewUrl;
    preview.hidden = false;
    announce(`Poster chosen: ${file.name}`);
  }

  posterField.input.addEventListener('change', () => choose(posterField.input.files[0]));
  dropzone.addEventListener('dragover', (event) => {
    event.preventDefault();
    dropzone.classList.add('dragging');
  });
  dropzone.addEventListener('dragleave', () => dropzone.classList.remove('dragging'));
  dropzone.addEventListener('drop', (event) => {
    event.preventDefault();
    dropzone.classList.remove('dragging');
    const file = event.dataTransfer?.files?.[0];
    if (file) {
      posterField.input.files = event.dataTransfer.files;
      choose(file);
    }
  });

  function current() {
    return Object.fromEntries(fields.map((f) => [f.name, f.value()]));
  }

  async function uploadPoster(id, version) {
    progressBox.hidden = false;
    progress.value = 0;
    text(progressText, 'Uploading the poster… 0%');
    const answer = await upload(`/api/movies/${encodeURIComponent(id)}/poster`, chosen, {
      ifMatch: version,
      onProgress: (fraction) => {
        const percent = Math.round(fraction * 100);
        progress.value = percent;
        text(progressText, `Uploading the poster… ${percent}%`);
      },
    });
    text(progressText, 'Poster uploaded.');
    return answer;
  }

  async function save() {
    const yours = current();
    if (!/^\d{1,4}$/.test(yours.year.trim())) {
      byName.year.setError('Give the year as a number, such as 1968.');
      byName.year.input.focus();
      return;
    }
    if (!editing) {
      const body = Object.fromEntries(NAMES.map((name) => [name, apiValue(name, yours[name])]));
      const added = await api('POST', '/api/movies', { body });
      if (chosen) {
        try {
          await uploadPoster(added.id, added.version);
        } catch (error) {
          showError({ ...error, field: 'poster' }, allFields, formError);
          replace(formError, 'The movie was added, but its poster was not. ', h('a', { href: `#/movies/${encodeURIComponent(added.id)}/edit` }, 'Try the poster again'));
          formError.hidden = false;
          return;
        }
      }
      announce(`Added ${yours.title}.`);
      navigate(`/movies/${encodeURIComponent(added.id)}`);
      return;
    }
    const before = formValues(base);
    const changes = Object.fromEntries(NAMES.filter((name) => !same(name, yours[name], before[name]))
      .map((name) => [name, apiValue(name, yours[name])]));
    if (Object.keys(changes).length === 0 && !chosen) {
      showError({ message: 'Nothing to save: change a field or choose a poster.' }, allFields, formError);
      return;
    }
    let { version } = base;
    if (Object.keys(changes).length > 0) {
      try {
        ({ version } = await api('PATCH', `/api/movies/${encodeURIComponent(base.id)}`, { body: changes, ifMatch: base.version }));
      } catch (error) {
        if (error.code === 'version_conflict') {
          await explainConflict(yours);
          return;
        }
        throw error;
      }
    }
    if (chosen) {
      try {
        await uploadPoster(base.id, version);
      } catch (error) {
        if (error.code === 'version_conflict') {
          await explainConflict(yours);
          return;
        }
        showError({ ...error, field: 'poster' }, allFields, formError);
        return;
      }
    }
    announce(`Saved ${yours.title}.`);
    navigate(`/movies/${encodeURIComponent(base.id)}`);
  }

  /** Someone saved first: show their version beside the reader's, unsaved, changes. */
  async function explainConflict(yours) {
    // Their change is stored; the read models may need a moment to show it.
    let theirs = null;
    for (let attempt = 0; attempt < 20; attempt += 1) {
      ({ movie: theirs } = await gql(MOVIE_QUERY, { id: base.id }));
      if (!theirs || theirs.version > base.version) break;
      await sleep(250);
    }
    if (isStale()) return;
    if (!theirs || theirs.removed) {
      showError({ message: 'Someone removed this movie while you were editing it.' }, allFields, formError);
      return;
    }
    const before = formValues(base);
    const after = formValues(theirs);
    const mine = NAMES.filter((name) => !same(name, yours[name], before[name]));
    const rows = NAMES.filter((name) => !same(name, after[name], before[name]) || mine.includes(name));
    const cell = (value) => h('td', {}, value === '' ? h('span', { class: 'hint' }, '(empty)') : value);
    replace(conflictBox,
      h('h2', { id: 'conflict-heading', tabindex: '-1' }, 'Someone else changed this movie'),
      h('p', {}, 'While you were editing, another person saved a change (now version ', String(theirs.version), ', at ', time(theirs.updatedAt), '). Your changes are not saved yet.'),
      h('div', { class: 'table-scroll' }, h('table', {},
        h('caption', {}, 'Their change beside yours'),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Field'),
          h('th', { scope: 'col' }, `When you started (version ${base.version})`),
          h('th', { scope: 'col' }, `Their version (${theirs.version})`),
          h('th', { scope: 'col' }, 'Yours'))),
        h('tbody', {}, rows.map((name) => h('tr', { class: mine.includes(name) && !same(name, after[name], before[name]) ? 'both-changed' : undefined },
          h('th', { scope: 'row' }, LABELS[name]),
          cell(before[name]),
          cell(after[name]),
          cell(yours[name])))))),
      h('p', { class: 'conflict-actions' },
        h('button', { type: 'button', class: 'primary', id: 'keep-mine', on: { click: () => resolve(theirs, mine, yours) } }, 'Keep my changes on top of theirs'),
        h('button', { type: 'button', id: 'take-theirs', on: { click: () => resolve(theirs, [], yours) } }, 'Discard mine, use their version')));
    conflictBox.hidden = false;
    conflictBox.querySelector('h2').focus();
    announce('Someone else changed this movie. Compare the versions.');
  }

  /** Continues from their version, with the reader's own changes (`keep`) still in the form. */
  function resolve(theirs, keep, yours) {
    base = theirs;
    const after = formValues(theirs);
    for (const name of NAMES) {
      byName[name].input.value = keep.includes(name) ? yours[name] : after[name];
    }
    conflictBox.hidden = true;
    replace(conflictBox);
    if (keep.length > 0) {
      announce('Your changes are back in the form on top of theirs. Review and save.');
      submit.focus();
    } else {
      announce('The form now shows their version.');
      byName.title.input.focus();
    }
  }

  async function onSubmit(event) {
    event.preventDefault();
    clearErrors(allFields, formError);
    await busy(submit, async () => {
      try {
        await save();
      } catch (error) {
        showError(error, allFields, formError);
      }
    });
  }

  main.append(
    h('h1', {}, editing ? `Edit ${base.title}` : 'Add a movie'),
    conflictBox,
    h('form', { novalidate: true, class: 'movie-form', on: { submit: onSubmit } },
      formError,
      fields.map((f) => f.element),
      dropzone,
      h('p', { class: 'form-actions' }, submit,
        editing ? h('a', { href: `#/movies/${encodeURIComponent(base.id)}` }, 'Cancel') : h('a', { href: '#/' }, 'Cancel'))),
  );
}
