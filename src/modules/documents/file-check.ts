// The checks a file must pass, applied as it streams: its first bytes say JPEG, PNG or PDF (and
// agree with the declared type), it is not empty, and it never grows past the size limit. A
// failure errors the stream, so the upload stops there and its partial blob is removed.
import { Transform, type TransformCallback } from 'node:stream';
import { AppError, validationFailed } from '../../http/errors.js';
import { contentProblem, type ContentType } from './document-rules.js';

export const tooLarge = (max: number) =>
  new AppError(413, 'document.too_large', `A document file may be at most ${max.toLocaleString('en')} bytes.`, { max_bytes: max });

// The longest signature checked (PNG's) is 8 bytes.
const HEAD_BYTES = 8;

export interface CheckedFile {
  /** Passes the bytes through unchanged; errors with a 400, 413 or 415 AppError. */
  stream: Transform;
  /** Known once the stream has ended. */
  result(): { size: number; type: ContentType };
}

/**
 * `field` names the part in errors (content, file, …); `back` prefixes messages about the back side.
 * The declared type is never trusted alone: the bytes decide.
 */
export function fileCheck(maxBytes: number, declared: string | undefined, field: string, back: boolean): CheckedFile {
  let size = 0;
  let type: ContentType | undefined;
  const head: Buffer[] = [];
  const judge = () => {
    const checked = contentProblem(Buffer.concat(head), declared);
    if (typeof checked !== 'string') throw new AppError(checked.status, checked.code, `${back ? 'Back side: ' : ''}${checked.message}`);
    type = checked;
    head.length = 0;
  };
  const stream = new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      try {
        size += chunk.length;
        if (size > maxBytes) throw tooLarge(maxBytes);
        if (!type) {
          head.push(chunk.subarray(0, HEAD_BYTES));
          if (head.reduce((n, b) => n + b.length, 0) >= HEAD_BYTES) judge();
        }
        done(null, chunk);
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done: TransformCallback) {
      try {
        if (size === 0) throw validationFailed([{ field, code: 'empty', message: 'The file is empty.' }]);
        if (!type) judge(); // a file shorter than the longest signature
        done();
      } catch (err) {
        done(err as Error);
      }
    },
  });
  return { stream, result: () => ({ size, type: type! }) };
}
