// GraphQL over fetch (POST /graphql) and subscriptions over one shared WebSocket speaking
// graphql-transport-ws (/graphql/ws). Both carry the session cookie.
import { lastPosition } from './api.js';

/** A GraphQL answer with errors; `code` is the first error's `extensions.code`. */
export class GraphQLError extends Error {
  constructor(errors, data) {
    super(errors.map((e) => e.message).join('; ') || 'The query failed.');
    this.name = 'GraphQLError';
    this.errors = errors;
    this.data = data;
    this.code = errors[0]?.extensions?.code;
  }
}

/**
 * gql(query, variables, { minPosition }) → data. Sends X-Min-Position with the highest position
 * a command of this page answered (or `minPosition` if higher), so what the user just did is in
 * the answer. Throws GraphQLError.
 */
export async function gql(query, variables = {}, { minPosition = 0 } = {}) {
  const position = Math.max(minPosition, lastPosition());
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  if (position > 0) headers['x-min-position'] = String(position);
  let response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      credentials: 'same-origin',
      headers,
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new GraphQLError([{ message: 'The server could not be reached. Check the connection and try again.', extensions: { code: 'network_error' } }]);
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new GraphQLError([{ message: `The server answered ${response.status}.`, extensions: { code: `http_${response.status}` } }]);
  }
  if (body.errors?.length) throw new GraphQLError(body.errors, body.data);
  return body.data;
}

// ---- subscriptions (graphql-transport-ws) ----

const PROTOCOL = 'graphql-transport-ws';
// The server closes a socket that stays quiet for 60 s; pings keep it open.
const PING_EVERY_MS = 20000;
const MAX_RETRY_MS = 15000;

let socket = null;
let acknowledged = false;
let retries = 0;
let retryTimer = null;
let pingTimer = null;
let nextId = 1;
const active = new Map(); // id → { query, variables, sink }
const statusListeners = new Set();
let status = 'offline';

function setStatus(next) {
  if (next === status) return;
  status = next;
  for (const listener of statusListeners) listener(status);
}

/** 'offline', 'connecting' or 'live'; `listener` is called on every change. Returns an unsubscriber. */
export function onLiveStatus(listener) {
  statusListeners.add(listener);
  listener(status);
  return () => statusListeners.delete(listener);
}

function send(message) {
  if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function sendSubscribe(id) {
  const { query, variables } = active.get(id);
  send({ id, type: 'subscribe', payload: { query, variables } });
}

function connect() {
  clearTimeout(retryTimer);
  retryTimer = null;
  const url = new URL('/graphql/ws', window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  setStatus('connecting');
  const ws = new WebSocket(url, PROTOCOL);
  socket = ws;
  ws.addEventListener('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: {} })));
  ws.addEventListener('message', (event) => {
    if (ws !== socket) return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    const subscription = active.get(message.id);
    switch (message.type) {
      case 'connection_ack':
        acknowledged = true;
        retries = 0;
        setStatus('live');
        for (const id of active.keys()) sendSubscribe(id);
        pingTimer = setInterval(() => send({ type: 'ping' }), PING_EVERY_MS);
        break;
      case 'ping':
        send({ type: 'pong' });
        break;
      case 'next':
        subscription?.sink.next?.(message.payload?.data, message.payload?.errors);
        break;
      case 'error':
        active.delete(message.id);
        subscription?.sink.error?.(new GraphQLError(message.payload ?? []));
        break;
      case 'complete':
        active.delete(message.id);
        subscription?.sink.complete?.();
        break;
      default:
        break;
    }
  });
  ws.addEventListener('close', () => {
    if (ws !== socket) return;
    socket = null;
    acknowledged = false;
    clearInterval(pingTimer);
    setStatus('offline');
    if (active.size > 0) {
      const wait = Math.min(MAX_RETRY_MS, 500 * 2 ** retries);
      retries += 1;
      retryTimer = setTimeout(connect, wait);
    }
  });
}

/**
 * subscribe(query, variables, { next(data, errors), error(err), complete() }) → unsubscribe().
 * Survives reconnects: active subscriptions are sent again once the socket is back.
 */
export function subscribe(query, variables, sink) {
  const id = String(nextId);
  nextId += 1;
  active.set(id, { query, variables, sink });
  if (acknowledged) sendSubscribe(id);
  else if (!socket && !retryTimer) connect();
  return () => {
    if (!active.delete(id)) return;
    if (acknowledged) send({ id, type: 'complete' });
  };
}

/** Opens the socket again (after signing in or out: the socket's identity is its cookie). */
export function reconnectLive() {
  if (!socket && !retryTimer) return;
  const old = socket;
  socket = null;
  acknowledged = false;
  clearInterval(pingTimer);
  old?.close(1000, 'session changed');
  connect();
}
