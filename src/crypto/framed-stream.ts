// Streaming AES-256-GCM for files (format kcb2), so a 10 MiB upload is sealed as it arrives and a
// download opened as it leaves, never held whole. The construction is the STREAM scheme used by
// Tink's AES-GCM-HKDF streaming AEAD and by age:
//
//   header  "kcb2" | u8 key-id length | key id | salt (16) | nonce prefix (7)
//   frames  AES-256-GCM(subkey, nonce = prefix | u32 frame index | u8 last-flag, aad) → ciphertext | tag (16)
//
// - subkey = HKDF-SHA256(user's data key, salt, "kyclo-blob-v2:" + aad): a fresh key per blob, so
//   nonces can never repeat across blobs, and the AAD (tenant, user, document, side) is bound twice:
//   in the key and in every frame.
// - Every frame but the last holds exactly FRAME_BYTES of plaintext; the last holds 0..FRAME_BYTES
//   and carries the last-flag. The index stops reordering and dropping frames; the flag stops
//   truncation at a frame boundary; appended bytes fail the last frame's tag.
// The older whole-blob format (kcb1) is still read by keyring.openBytes.
import crypto from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export const FRAMED_MAGIC = Buffer.from('kcb2');
export const FRAME_BYTES = 64 * 1024;
const TAG = 16;
const SALT = 16;
const PREFIX = 7;

export interface FramedKey {
  keyId: string;
  key: Buffer;
}

export const isFramed = (head: Buffer) => head.length >= FRAMED_MAGIC.length && head.subarray(0, FRAMED_MAGIC.length).equals(FRAMED_MAGIC);

const subkey = (key: Buffer, salt: Buffer, aad: string) => Buffer.from(crypto.hkdfSync('sha256', key, salt, `kyclo-blob-v2:${aad}`, 32));

function nonce(prefix: Buffer, index: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  prefix.copy(n, 0);
  n.writeUInt32BE(index, PREFIX);
  n[11] = last ? 1 : 0;
  return n;
}

/** Collects chunks and hands out exact-size slices without copying more than one frame at a time. */
class Pending {
  private chunks: Buffer[] = [];
  length = 0;
  push(b: Buffer) {
    this.chunks.push(b);
    this.length += b.length;
  }
  peek(n: number): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.length)];
    return this.chunks[0]!.subarray(0, n);
  }
  take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.length);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.length -= n;
    return all.subarray(0, n);
  }
}

/** Seals what is written into it; the output is the kcb2 header followed by its frames. */
export function sealFramed(key: FramedKey, aad: string): Transform {
  const salt = crypto.randomBytes(SALT);
  const prefix = crypto.randomBytes(PREFIX);
  const k = subkey(key.key, salt, aad);
  const aadBytes = Buffer.from(aad);
  const pending = new Pending();
  let index = 0;
  const frame = (plain: Buffer, last: boolean) => {
    const cipher = crypto.createCipheriv('aes-256-gcm', k, nonce(prefix, index++, last));
    cipher.setAAD(aadBytes);
    return Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  };
  const id = Buffer.from(key.keyId, 'latin1');
  let headerSent = false;
  const header = (t: Transform) => {
    if (headerSent) return;
    headerSent = true;
    t.push(Buffer.concat([FRAMED_MAGIC, Buffer.from([id.length]), id, salt, prefix]));
  };
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      header(this);
      pending.push(chunk);
      // A frame is only known not to be the last once more bytes follow it.
      while (pending.length > FRAME_BYTES) this.push(frame(pending.take(FRAME_BYTES), false));
      done();
    },
    flush(done: TransformCallback) {
      header(this);
      this.push(frame(pending.take(pending.length), true));
      done();
    },
  });
}

/** Opens a kcb2 stream sealed for `aad` under `key`; any failure errors the stream with `fail(message)`. */
export function openFramed(key: FramedKey, aad: string, fail: (message: string) => Error): Transform {
  const aadBytes = Buffer.from(aad);
  const pending = new Pending();
  let k: Buffer | undefined;
  let prefix: Buffer | undefined;
  let index = 0;
  const open = (sealed: Buffer, last: boolean): Buffer => {
    const decipher = crypto.createDecipheriv('aes-256-gcm', k!, nonce(prefix!, index++, last));
    decipher.setAAD(aadBytes);
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG));
    try {
      return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG)), decipher.final()]);
    } catch {
      throw fail('a file frame does not open with this key, tenant, user and field');
    }
  };
  const readHeader = (): boolean => {
    if (k) return true;
    const fixed = FRAMED_MAGIC.length + 1;
    if (pending.length < fixed) return false;
    const first = pending.peek(fixed);
    if (!isFramed(first)) throw fail('not a Kyclo framed blob');
    const idLen = first[FRAMED_MAGIC.length]!;
    if (pending.length < fixed + idLen + SALT + PREFIX) return false;
    const h = pending.take(fixed + idLen + SALT + PREFIX).subarray(fixed);
    if (h.subarray(0, idLen).toString('latin1') !== key.keyId) throw fail('the file was sealed with another data key');
    k = subkey(key.key, h.subarray(idLen, idLen + SALT), aad);
    prefix = Buffer.from(h.subarray(idLen + SALT));
    return true;
  };
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      try {
        pending.push(chunk);
        if (!readHeader()) return done();
        while (pending.length > FRAME_BYTES + TAG) this.push(open(pending.take(FRAME_BYTES + TAG), false));
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done: TransformCallback) {
      try {
        if (!readHeader()) throw fail('the file is truncated');
        if (pending.length < TAG) throw fail('the file is truncated');
        this.push(open(pending.take(pending.length), true));
        done();
      } catch (err) {
        done(err as Error);
      }
    },
  });
}
