// Passkeys with the browser's own prompt (navigator.credentials). The API speaks webauthn-rs's
// JSON, where binary fields are base64url; the browser wants ArrayBuffers. Options carry a
// `ceremonyId` that the finishing request sends back beside the credential.
import { api } from './api.js';

export function passkeysSupported() {
  return typeof window.PublicKeyCredential === 'function' && Boolean(navigator.credentials);
}

function toBuffer(base64url) {
  const base64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
}

function toBase64url(buffer) {
  let binary = '';
  for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const withBufferId = (descriptor) => ({ ...descriptor, id: toBuffer(descriptor.id) });

/** Registers a new passkey for the signed-in user. Resolves to the API's answer. */
export async function addPasskey() {
  const options = await api('POST', '/api/passkeys/registration/options');
  const publicKey = {
    ...options.publicKey,
    challenge: toBuffer(options.publicKey.challenge),
    user: { ...options.publicKey.user, id: toBuffer(options.publicKey.user.id) },
    excludeCredentials: (options.publicKey.excludeCredentials ?? []).map(withBufferId),
  };
  const credential = await navigator.credentials.create({ publicKey });
  const response = credential.response;
  return api('POST', '/api/passkeys/registration', {
    body: {
      ceremonyId: options.ceremonyId,
      credential: {
        id: credential.id,
        rawId: toBase64url(credential.rawId),
        type: credential.type,
        response: {
          attestationObject: toBase64url(response.attestationObject),
          clientDataJSON: toBase64url(response.clientDataJSON),
          transports: response.getTransports?.() ?? [],
        },
        extensions: credential.getClientExtensionResults(),
      },
    },
  });
}

/**
 * Signs in with a passkey: of `username`'s, or any discoverable one on this device when no
 * username is given. Resolves to the API's answer (the session cookie is set).
 */
export async function signInWithPasskey(username) {
  const options = await api('POST', '/api/passkeys/authentication/options', {
    body: username ? { username } : {},
  });
  const publicKey = {
    ...options.publicKey,
    challenge: toBuffer(options.publicKey.challenge),
    allowCredentials: (options.publicKey.allowCredentials ?? []).map(withBufferId),
  };
  // A button press asks now: the options' `conditional` mediation is for autofill prompts.
  const credential = await navigator.credentials.get({ publicKey });
  const response = credential.response;
  return api('POST', '/api/passkeys/authentication', {
    body: {
      ceremonyId: options.ceremonyId,
      credential: {
        id: credential.id,
        rawId: toBase64url(credential.rawId),
        type: credential.type,
        response: {
          authenticatorData: toBase64url(response.authenticatorData),
          clientDataJSON: toBase64url(response.clientDataJSON),
          signature: toBase64url(response.signature),
          userHandle: response.userHandle ? toBase64url(response.userHandle) : null,
        },
        extensions: credential.getClientExtensionResults(),
      },
    },
  });
}

/** What to tell the reader when the browser's prompt failed or was dismissed. */
export function passkeyProblem(error) {
  if (error?.name === 'NotAllowedError') return 'The passkey prompt was dismissed or timed out. Try again.';
  if (error?.name === 'InvalidStateError') return 'This device already holds a passkey for your account.';
  if (error?.name === 'SecurityError') return 'Passkeys need this site to be opened at its domain name (see MARQUEE_PUBLIC_URL).';
  return error?.message || 'The passkey did not work.';
}
