// Every failure leaves as application/problem+json with a stable code and the request id.
// Fastify's own errors (validation, content type, body size, bad JSON) are translated here so
// no client ever sees a bare 500 or a stack trace.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, TITLES, type FieldError } from './errors.js';
import { DecryptError } from '../crypto/keyring.js';

type AjvError = { instancePath: string; keyword: string; params: Record<string, unknown>; message?: string };

function fieldOf(e: AjvError, context: string | undefined): string {
  const base = e.instancePath.replace(/^\//, '').replaceAll('/', '.');
  const extra =
    (e.params.additionalProperty as string | undefined) ??
    (e.params.missingProperty as string | undefined) ??
    (e.keyword === 'discriminator' ? (e.params.tag as string | undefined) : undefined);
  const name = [base, extra].filter(Boolean).join('.');
  if (!name) return context === 'body' ? 'body' : (context ?? 'request');
  return name;
}

function codeOf(e: AjvError): string {
  switch (e.keyword) {
    case 'additionalProperties':
      return 'unknown_field';
    case 'required':
      return 'required';
    case 'format':
      return `invalid_${String(e.params.format).replaceAll('-', '_')}`;
    case 'maxLength':
    case 'maxItems':
    case 'maxProperties':
    case 'maximum':
      return 'too_large';
    case 'minLength':
    case 'minItems':
    case 'minimum':
      return 'too_small';
    case 'enum':
    case 'const':
      return 'not_allowed_value';
    case 'discriminator':
      return e.params.error === 'mapping' ? 'not_allowed_value' : 'required';
    default:
      return `invalid_${e.keyword}`;
  }
}

function messageOf(e: AjvError): string {
  if (e.keyword === 'additionalProperties') return 'This field is not accepted here.';
  if (e.keyword === 'enum') return `must be one of: ${(e.params.allowedValues as unknown[]).join(', ')}`;
  return e.message ?? 'is invalid';
}

const isNullBranch = (e: AjvError) => e.keyword === 'type' && e.params.type === 'null';

/** Maps Ajv's errors to field errors, dropping the noise an anyOf/oneOf produces for branches not taken. */
export function fieldErrors(validation: AjvError[], context: string | undefined): FieldError[] {
  const seen = new Set<string>();
  const out: FieldError[] = [];
  // A nullable field is anyOf [T, null]: when T fails, "must be null" only repeats the failure.
  const failedFields = new Set(validation.filter((e) => !isNullBranch(e)).map((e) => fieldOf(e, context)));
  for (const e of validation) {
    if (e.keyword === 'anyOf' || e.keyword === 'oneOf' || e.keyword === 'if') continue;
    if (isNullBranch(e) && failedFields.has(fieldOf(e, context))) continue;
    const fe = { field: fieldOf(e, context), code: codeOf(e), message: messageOf(e) };
    const key = `${fe.field}|${fe.code}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(fe);
  }
  return out;
}

function toAppError(err: FastifyError & { validation?: AjvError[]; validationContext?: string }): AppError | null {
  if (err instanceof AppError) return err;
  if (err.validation) {
    const errs = fieldErrors(err.validation, err.validationContext);
    return new AppError(400, 'request.validation_failed', `The request is invalid: ${errs.map((e) => e.field).join(', ')}.`, {
      errors: errs,
    });
  }
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError(415, 'request.unsupported_media_type', 'Send the body as application/json.');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError(413, 'request.body_too_large', 'The body is larger than this route accepts (1 MiB; document uploads: their file limit).');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError(400, 'request.malformed_json', 'The body is not valid JSON.');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError(400, 'request.invalid_content_length', 'Content-Length does not match the body.');
  }
  if (err instanceof DecryptError) {
    return new AppError(500, 'data.integrity', 'A stored value failed its integrity check; it was not returned.');
  }
  if (err instanceof SyntaxError) return new AppError(400, 'request.malformed_json', 'The body is not valid JSON.');
  // Two transactions that each waited for the other: one was chosen to fail. Safe to retry.
  if (err.code === '40P01' || err.code === '40001') {
    return new AppError(409, 'request.concurrent_conflict', 'The request collided with a concurrent change; retry it.', {
      headers: { 'retry-after': '0' },
    });
  }
  if (isDatabaseUnavailable(err)) {
    return new AppError(503, 'service.unavailable', 'The database is unavailable; retry shortly.', {
      headers: { 'retry-after': '1' },
    });
  }
  // A size bound kept by the database (migration 0012) that no check in front of it caught.
  if (err.code === '23514' && /_bounded$/.test(String((err as { constraint?: unknown }).constraint))) {
    const field = String((err as { column?: unknown }).column ?? 'body');
    return new AppError(422, 'request.value_too_large', `The change would make ${field} larger than it may be stored.`, {
      errors: [{ field, code: 'too_large', message: 'would exceed the stored size bound' }],
    });
  }
  // A value PostgreSQL cannot store (class 22: data exception) that validation let through is the
  // caller's input, not our fault: a 400 rather than a 500. Logged as a warning to tighten schemas.
  if (typeof err.code === 'string' && /^22[0-9A-Z]{3}$/.test(err.code) && 'severity' in err) {
    return new AppError(400, 'request.invalid_value', 'A value in the request cannot be stored.');
  }
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return new AppError(err.statusCode, 'request.invalid', err.message);
  }
  return null;
}

// Connection-level failures (server restarting, connection killed, pool exhausted) are transient.
function isDatabaseUnavailable(err: { code?: string; message?: string }): boolean {
  const code = err.code ?? '';
  return (
    code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' ||
    code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE' ||
    // A transaction whose connection died fails again on ROLLBACK, with pg's own wording.
    /Connection terminated|not queryable|Connection ended|timeout exceeded when trying to connect/.test(err.message ?? '')
  );
}

export function sendProblem(req: FastifyRequest, reply: FastifyReply, err: AppError): FastifyReply {
  const { errors, headers, ...rest } = err.extra;
  if (headers) reply.headers(headers);
  return reply
    .code(err.status)
    .type('application/problem+json')
    .send({
      // Extra members first: they can never overwrite the standard ones.
      ...rest,
      type: `https://kyclo.dev/problems/${err.code}`,
      title: TITLES[err.status] ?? 'Error',
      status: err.status,
      detail: err.message,
      code: err.code,
      request_id: req.id,
      ...(errors ? { errors } : {}),
    });
}

export function registerProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, req, reply) => {
    const known = toAppError(error);
    if (known) {
      if (known.status >= 500 || known.code === 'request.invalid_value') req.log.error({ err: error }, 'request failed: %s', known.code);
      return sendProblem(req, reply, known);
    }
    req.log.error({ err: error }, 'unexpected error');
    return sendProblem(req, reply, new AppError(500, 'internal', `An unexpected error occurred; quote request id ${req.id}.`));
  });
  app.setNotFoundHandler((req, reply) =>
    sendProblem(req, reply, new AppError(404, 'route.not_found', `No route ${req.method} ${req.url.split('?')[0]}.`)),
  );
}
