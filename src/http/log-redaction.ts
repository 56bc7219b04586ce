// What the request logs may hold: never a secret, never personal data, at any level. Query strings
// carry search terms, external refs and emails (`?q=jane@example.com`), so only the parameters known
// to be non-personal keep their value, and the one route whose path holds a personal value (the
// lookup by external ref) loses it; every header dump (Fastify's own, and @fastify/multipart's
// busboy options at trace, which embed the request headers) loses its credentials.
import { stdSerializers, type Bindings, type ChildLoggerOptions, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { FastifyRequest } from 'fastify';

/** Query parameters whose values are codes, ids, bounds or cursors: kept in logs. Anything else is redacted. */
const SAFE_QUERY = new Set(['limit', 'cursor', 'status', 'type', 'kyc_status', 'country', 'sort', 'order', 'from', 'to', 'action', 'actor', 'user_id', 'since', 'event_type', 'dry_run', 'outcome', 'created_from', 'created_to', 'updated_since', 'side']);
export const REDACTED = '[redacted]';

/** A path segment that is a personal value: the external ref of `GET /v1/users/by-external-ref/{ref}`. */
const PERSONAL_SEGMENT = /(\/by-external-ref\/)[^/?#]*/gi;

/** The URL with every query value and path segment that could be personal replaced by [redacted]. */
export function redactUrl(raw: string): string {
  const url = /by-external-ref/i.test(raw) ? raw.replace(PERSONAL_SEGMENT, `$1${REDACTED}`) : raw;
  const q = url.indexOf('?');
  if (q < 0) return url;
  const params = url.slice(q + 1).split('&').map((pair) => {
    const eq = pair.indexOf('=');
    const name = eq < 0 ? pair : pair.slice(0, eq);
    let decoded = name;
    try {
      decoded = decodeURIComponent(name);
    } catch {
      return REDACTED;
    }
    return eq < 0 || SAFE_QUERY.has(decoded) ? pair : `${name}=${REDACTED}`;
  });
  return `${url.slice(0, q)}?${params.join('&')}`;
}

const SECRET_HEADERS = ['authorization', 'cookie', 'x-api-key', 'proxy-authorization'];

// PostgreSQL's error fields that quote the statement or the data it refused (a class-22 error on a
// jsonb value quotes the JSON text in `where`): an error logged must not carry a request's values.
const DATA_BEARING_ERROR_FIELDS = ['where', 'detail', 'internalQuery', 'query', 'parameters'];

/**
 * The quoted values in a database error's text (`invalid input syntax for type uuid: "…"`): from the
 * first quote to the last, since PostgreSQL does not escape a quote inside the value it quotes.
 */
const QUOTED = /"[^\n]*"/g;

/**
 * pino's error serializer, less the fields in which the database quotes values; and a data error's
 * (class 22) own message, and the stack that repeats it, with its quoted values redacted.
 */
export function errWithoutData(err: Error): Record<string, unknown> {
  const out = stdSerializers.err(err) as unknown as Record<string, unknown>;
  for (const f of DATA_BEARING_ERROR_FIELDS) delete out[f];
  if (typeof out.code === 'string' && out.code.startsWith('22')) {
    for (const f of ['message', 'stack']) if (typeof out[f] === 'string') out[f] = (out[f] as string).replace(QUOTED, `"${REDACTED}"`);
  }
  return out;
}

/** Fastify's `logger` option: level, the redacted request serializer, and header paths censored wherever they appear. */
export function loggerOptions(level: string, stream?: DestinationStream): LoggerOptions & { stream?: DestinationStream } {
  const paths = SECRET_HEADERS.flatMap((h) => [`headers["${h}"]`, `*.headers["${h}"]`, `*.*.headers["${h}"]`]);
  return {
    level,
    redact: { paths, censor: REDACTED },
    serializers: {
      err: errWithoutData,
      req: (req: FastifyRequest) => ({
        method: req.method, url: redactUrl(req.url), host: req.host, remoteAddress: req.ip, remotePort: req.socket?.remotePort,
      }),
    },
    ...(stream ? { stream } : {}),
  };
}

type LogFn = (...args: unknown[]) => void;
const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/**
 * A request's logger, made only when the request writes a line at an enabled level. Fastify's own
 * makes a pino child per request (its bindings serialised and redacted: ≈ 5 µs, 4 % of a GET's
 * CPU in the bench profile) although at the deployed level (warn) nearly no request logs anything.
 */
class RequestLogger {
  #made: Logger | undefined;
  constructor(readonly parent: Logger, readonly bindings: Bindings, readonly options: ChildLoggerOptions) {}
  get made(): Logger {
    return (this.#made ??= this.parent.child(this.bindings, this.options));
  }
  /** Fastify passes the route's level (or the server's) in the options. */
  get level(): string {
    return this.#made?.level ?? this.options.level ?? this.parent.level;
  }
  set level(level: string) {
    this.made.level = level;
  }
  isLevelEnabled(level: string): boolean {
    if (this.#made) return this.#made.isLevelEnabled(level);
    const values = this.parent.levels.values;
    return values[level]! >= values[this.level]!; // silent is Infinity: nothing passes
  }
  child(bindings: Bindings, options?: ChildLoggerOptions): Logger {
    return this.made.child(bindings, options);
  }
  silent(): void {}
  declare fatal: LogFn;
  declare error: LogFn;
  declare warn: LogFn;
  declare info: LogFn;
  declare debug: LogFn;
  declare trace: LogFn;
}
for (const level of LEVELS) {
  RequestLogger.prototype[level] = function (this: RequestLogger, ...args: unknown[]) {
    if (this.isLevelEnabled(level)) (this.made[level] as LogFn)(...args);
  };
}

/** Fastify's `childLoggerFactory`: the request's logger, made on its first enabled line. */
export function lazyRequestLogger(logger: Logger, bindings: Bindings, options: ChildLoggerOptions): Logger {
  return new RequestLogger(logger, bindings, options) as unknown as Logger;
}
