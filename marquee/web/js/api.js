// The JSON command API (/api/…): one call per command, errors as ApiError with the API's
// `{error: {code, message, field}}`. The session is the HttpOnly cookie the API sets; browsers
// send this site's Origin on unsafe requests, which the API's CSRF check wants.

/** An error answer of the command API (status 0: the server was not reached). */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

// The highest event position any command answered in this page: GraphQL waits for the read
// models to reach it (read-your-writes), see graphql.js.
let knownPosition = 0;

export function lastPosition() {
  return knownPosition;
}

export function notePosition(position) {
  if (Number.isInteger(position) && position > knownPosition) knownPosition = position;
}

/**
 * api('POST', '/api/movies', { body, ifMatch, headers }) → the parsed JSON answer (null for 204).
 * Throws ApiError.
 */
export async function api(method, path, { body, ifMatch, headers = {} } = {}) {
  const init = { method, credentials: 'same-origin', headers: { accept: 'application/json', ...headers } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (ifMatch !== undefined) init.headers['if-match'] = `"${ifMatch}"`;
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw unreachable();
  }
  const answer = await parse(response.status, await response.text());
  notePosition(answer?.position);
  return answer;
}

/**
 * PUT `file` to `path` with upload progress: onProgress(fraction 0…1). XMLHttpRequest, since
 * fetch reports no upload progress. Resolves to the parsed answer; throws ApiError.
 */
export function upload(path, file, { ifMatch, onProgress } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', path);
    xhr.withCredentials = true;
    xhr.setRequestHeader('content-type', file.type || 'application/octet-stream');
    xhr.setRequestHeader('accept', 'application/json');
    if (ifMatch !== undefined) xhr.setRequestHeader('if-match', `"${ifMatch}"`);
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable && onProgress) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener('load', () => {
      parse(xhr.status, xhr.responseText).then((answer) => {
        notePosition(answer?.position);
        onProgress?.(1);
        resolve(answer);
      }, reject);
    });
    xhr.addEventListener('error', () => reject(unreachable()));
    xhr.addEventListener('abort', () => reject(new ApiError(0, 'aborted', 'The upload was cancelled.')));
    xhr.send(file);
  });
}

async function parse(status, body) {
  let json = null;
  try {
    json = body ? JSON.parse(body) : null;
  } catch {
    json = null;
  }
  if (status >= 200 && status < 300) return json;
  const error = json?.error;
  throw new ApiError(
    status,
    error?.code ?? `http_${status}`,
    error?.message ?? `The server answered ${status}.`,
    error?.field,
  );
}

function unreachable() {
  return new ApiError(0, 'network_error', 'The server could not be reached. Check the connection and try again.');
}
