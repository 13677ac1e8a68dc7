// Who is signed in: GraphQL's `me`, asked once at start and after every sign-in or sign-out.
// The session itself is the API's HttpOnly cookie, which scripts never see.
import { api } from './api.js';
import { gql, GraphQLError, reconnectLive } from './graphql.js';

let current = null;
const listeners = new Set();

/** The signed-in user ({ id, username, email, roles, passkeys }) or null. */
export function currentUser() {
  return current;
}

/** Whether the signed-in user has `role` ('user', 'admin', 'auditor'). */
export function hasRole(role) {
  return Boolean(current?.roles?.includes(role));
}

/** Calls `listener(user)` on every change. Returns an unsubscriber. */
export function onSessionChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function set(user) {
  current = user;
  for (const listener of listeners) listener(current);
}

/** Asks the server who this is. A session the server no longer knows counts as signed out. */
export async function refreshSession() {
  try {
    const data = await gql('query Me { me { id username email roles passkeys } }');
    set(data.me);
  } catch (error) {
    if (error instanceof GraphQLError && error.code === 'unauthenticated') set(null);
    else throw error;
  }
  return current;
}

/** Signs in with a password; throws ApiError. */
export async function signIn(username, password) {
  await api('POST', '/api/sessions', { body: { username, password } });
  return sessionStarted();
}

/** After any sign-in (password or passkey): the socket and `me` follow the new cookie. */
export async function sessionStarted() {
  reconnectLive();
  return refreshSession();
}

/** Signs out; the API clears the cookie. */
export async function signOut() {
  try {
    await api('DELETE', '/api/sessions');
  } finally {
    set(null);
    reconnectLive();
  }
}
