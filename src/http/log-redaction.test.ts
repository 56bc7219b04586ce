// The request logger made on demand (lazyRequestLogger): the same lines as pino's child, at the
// levels the route's (or server's) level lets through, and no child for a request that logs nothing.
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { errWithoutData, lazyRequestLogger, REDACTED } from './log-redaction.js';

function capture(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({ write(chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done(); } });
  const logger = pino({ level }, stream);
  // Counts the children made of the server's logger (pino's children inherit this property).
  let children = 0;
  type Make = (this: unknown, b: pino.Bindings, o?: pino.ChildLoggerOptions) => unknown;
  const child = logger.child as unknown as Make;
  const counted: Make = function (b, o) {
    if (this === logger) children++;
    return child.call(this, b, o);
  };
  logger.child = counted as unknown as typeof logger.child;
  return { logger, lines, children: () => children };
}

describe('lazyRequestLogger', () => {
  it('makes no child for lines below the level, and writes the others with the request bindings', () => {
    const c = capture('warn');
    const log = lazyRequestLogger(c.logger, { reqId: 'req_1' }, { level: 'warn' });
    log.info({ a: 1 }, 'incoming request');
    log.debug('nothing');
    expect(c.children()).toBe(0);
    expect(c.lines).toEqual([]);
    log.warn({ code: 'auth.invalid_key' }, 'refused');
    log.error('and again');
    expect(c.children()).toBe(1);
    expect(c.lines).toEqual([
      expect.objectContaining({ level: 40, reqId: 'req_1', code: 'auth.invalid_key', msg: 'refused' }),
      expect.objectContaining({ level: 50, reqId: 'req_1', msg: 'and again' }),
    ]);
  });

  it("follows the route's level over the server's, silent included", () => {
    const c = capture('warn');
    const chatty = lazyRequestLogger(c.logger, { reqId: 'req_2' }, { level: 'debug' });
    expect(chatty.level).toBe('debug');
    expect(chatty.isLevelEnabled('debug')).toBe(true);
    chatty.debug('shown');
    expect(c.lines).toEqual([expect.objectContaining({ level: 20, reqId: 'req_2', msg: 'shown' })]);
    const silent = lazyRequestLogger(c.logger, { reqId: 'req_3' }, { level: 'silent' });
    silent.fatal('never');
    expect(c.lines).toHaveLength(1);
    const child = lazyRequestLogger(c.logger, { reqId: 'req_4' }, { level: 'warn' }).child({ part: 'upload' });
    child.warn('nested');
    expect(c.lines.at(-1)).toMatchObject({ reqId: 'req_4', part: 'upload', msg: 'nested' });
  });
});

// PostgreSQL quotes the value it refused in a data error's message (and so in the stack that
// repeats it): an error logged must not carry a request's values.
describe('errWithoutData', () => {
  it("redacts the quoted values of a data error's message and stack, and drops the fields that quote the statement", () => {
    const err = Object.assign(new Error('invalid input syntax for type timestamp with time zone: "jane@example.com"'), {
      code: '22007', where: 'jane', detail: 'Jane Doe', query: 'select $1', parameters: ['jane@example.com'],
    });
    const out = errWithoutData(err);
    expect(JSON.stringify(out)).not.toMatch(/jane/i);
    expect(out.message).toBe(`invalid input syntax for type timestamp with time zone: "${REDACTED}"`);
    expect(String(out.stack)).toContain(`"${REDACTED}"`);
    // PostgreSQL does not escape a quote inside the value: everything between the first and last goes.
    const quoted = errWithoutData(Object.assign(new Error('invalid input syntax for type uuid: "x"jane@example.com"y"'), { code: '22P02' }));
    expect(quoted.message).toBe(`invalid input syntax for type uuid: "${REDACTED}"`);
    // Another error keeps its message: it quotes no value of the request.
    const lock = Object.assign(new Error('relation "users" does not exist'), { code: '42P01' });
    expect(errWithoutData(lock).message).toBe('relation "users" does not exist');
  });
});
