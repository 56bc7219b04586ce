// The signed-in session: the API key lives in sessionStorage only (gone when the tab closes, never in
// localStorage or a cookie), and every call goes through the typed client to this same origin.
import { createKycloClient, KycloProblem, type KycloClient, type Me } from '@kyclo/client';

const STORAGE_KEY = 'kyclo.console.key';

export interface Session {
  client: KycloClient;
  me: Me;
  can: (permission: Me['permissions'][number]) => boolean;
}

export function clientFor(apiKey: string): KycloClient {
  // Retries would hide an operator's mistake behind a spinner; a refused write should show at once.
  return createKycloClient({ baseUrl: window.location.origin, apiKey, retries: 0, conditionalWrites: false });
}

/** Checks the key against GET /v1/me; on success it is kept for this tab. */
export async function signIn(apiKey: string): Promise<Session> {
  const client = clientFor(apiKey.trim());
  const me = await client.ok(client.api.GET('/v1/me'));
  sessionStorage.setItem(STORAGE_KEY, apiKey.trim());
  return sessionOf(client, me);
}

/**
 * The session this tab signed in, checked again against GET /v1/me. The key is forgotten only when
 * the server refuses it (401, 403); any other failure (a 429, a 503, no network) is thrown with the
 * key kept, so the operator can try again instead of pasting the key anew.
 */
export async function resume(): Promise<Session | null> {
  const key = sessionStorage.getItem(STORAGE_KEY);
  if (!key) return null;
  try {
    return await signIn(key);
  } catch (err) {
    if (err instanceof KycloProblem && (err.status === 401 || err.status === 403)) {
      sessionStorage.removeItem(STORAGE_KEY);
      return null;
    }
    throw err;
  }
}

export function signOut(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}

const sessionOf = (client: KycloClient, me: Me): Session => ({ client, me, can: (p) => me.permissions.includes(p) });

/** What to say about a failure: the API's problem (detail, code, the fields at fault) or the error's message. */
export function describe(err: unknown): { title: string; detail: string; code?: string; requestId?: string; fields: { field: string; message: string }[] } {
  if (err instanceof KycloProblem) {
    return { title: err.title, detail: err.detail, code: err.code, requestId: err.requestId, fields: err.errors.map((e) => ({ field: e.field, message: e.message })) };
  }
  return { title: 'Request failed', detail: err instanceof Error ? err.message : String(err), fields: [] };
}
