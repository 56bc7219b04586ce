// Errors as typed values: every non-2xx answer becomes a KycloProblem carrying the RFC 9457
// problem document (code, detail, request id, field errors), so callers switch on `code`.
import type { components } from './schema.js';

export type ProblemDocument = components['schemas']['Problem'];
export type FieldError = NonNullable<ProblemDocument['errors']>[number];

export class KycloProblem extends Error {
  override readonly name = 'KycloProblem';
  /** The HTTP status. */
  readonly status: number;
  /** The stable dotted code (`user.transition_not_allowed`, `precondition_failed`…). */
  readonly code: string;
  readonly type: string;
  readonly title: string;
  readonly detail: string;
  /** Quote it when reporting a problem: the server logged the detail under it. */
  readonly requestId: string;
  /** Per-field errors of a 400. */
  readonly errors: FieldError[];
  /** The whole problem document, extension members included (`allowed`, `current_version`, `existing_id`…). */
  readonly body: ProblemDocument & Record<string, unknown>;

  constructor(status: number, body: unknown, requestId?: string | null) {
    const doc = isProblem(body) ? body : null;
    const detail = doc?.detail ?? `HTTP ${status}`;
    super(`${doc?.code ?? `http.${status}`}: ${detail}`);
    this.status = status;
    this.code = doc?.code ?? `http.${status}`;
    this.type = doc?.type ?? 'about:blank';
    this.title = doc?.title ?? `HTTP ${status}`;
    this.detail = detail;
    this.requestId = doc?.request_id ?? requestId ?? '';
    this.errors = doc?.errors ?? [];
    this.body = (doc ?? { type: this.type, title: this.title, status, detail, code: this.code, request_id: this.requestId }) as ProblemDocument & Record<string, unknown>;
  }
}

function isProblem(v: unknown): v is ProblemDocument & Record<string, unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { code?: unknown }).code === 'string' && typeof (v as { status?: unknown }).status === 'number';
}
