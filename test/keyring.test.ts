import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyring, DecryptError, masterKeyId } from '../src/crypto/keyring.js';
import { openTenantContext, type Client, type TestContext } from './helpers/app.js';
import { individual } from './helpers/factories.js';

let ctx: TestContext;
let api: Client;
let tenantId: string;

beforeAll(async () => ({ ctx, api, tenantId } = await openTenantContext()));
afterAll(() => ctx.close());

const newUser = async () => (await api.post('/v1/users', individual())).json().id as string;
const seal = (userId: string, field: string, value: unknown) => ctx.db.transaction().execute((tx) => ctx.keyring.seal(tx, tenantId, userId, field, value));

describe('the keyring', () => {
  it('seals with the user’s data key and opens only for the same tenant, user and field', async () => {
    const [a, b] = [await newUser(), await newUser()];
    const envelope = await seal(a, 'test.field', { ssn: '111111112' });
    expect(envelope).toMatch(/^kc1\.dk_[0-9a-f]{16}\.[\w-]+\.[\w-]+$/);
    expect(envelope).not.toContain('111111112');
    expect(await ctx.keyring.open(tenantId, a, 'test.field', envelope)).toEqual({ ssn: '111111112' });
    await expect(ctx.keyring.open(tenantId, a, 'other.field', envelope)).rejects.toBeInstanceOf(DecryptError);
    // Copied into another user's row: the key id is not theirs, and even under their key id the AAD fails.
    expect(await ctx.keyring.open(tenantId, b, 'test.field', envelope)).toBeUndefined();
    await seal(b, 'test.field', 'make b a key');
    const bKey = await ctx.db.selectFrom('user_keys').select('key_id').where('user_id', '=', b).executeTakeFirstOrThrow();
    const forged = envelope.replace(/^kc1\.dk_[0-9a-f]{16}/, `kc1.${bKey.key_id}`);
    await expect(ctx.keyring.open(tenantId, b, 'test.field', forged)).rejects.toBeInstanceOf(DecryptError);
  });

  it('stores data keys only wrapped by the master key, with the master key’s id', async () => {
    const a = await newUser();
    await seal(a, 'test.field', 1);
    const row = await ctx.db.selectFrom('user_keys').selectAll().where('user_id', '=', a).executeTakeFirstOrThrow();
    expect(row.wrapped_key).toHaveLength(12 + 32 + 16);
    expect(row.master_key_id).toMatch(/^mk_[0-9a-f]{12}$/);
    const other = createKeyring({ db: ctx.db, masterKey: crypto.randomBytes(32) });
    expect(masterKeyId(crypto.randomBytes(32))).not.toBe(row.master_key_id);
    await expect(other.open(tenantId, a, 'test.field', await seal(a, 'test.field', 2))).rejects.toBeInstanceOf(DecryptError);
  });

  it('after destroy, every value of the user is gone for good, and a new key never reopens them', async () => {
    const a = await newUser();
    const envelope = await seal(a, 'test.field', 'secret');
    await ctx.db.transaction().execute((tx) => ctx.keyring.destroy(tx, tenantId, a));
    expect(await ctx.keyring.open(tenantId, a, 'test.field', envelope)).toBeUndefined();
    const row = await ctx.db.selectFrom('user_keys').selectAll().where('user_id', '=', a).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ wrapped_key: null, destroyed_at: expect.any(Date) });
  });

  it('a ciphertext copied into another user’s event is not shown as theirs', async () => {
    const [a, b] = [await newUser(), await newUser()];
    const eventOf = (id: string) => ctx.db.selectFrom('events').selectAll().where('user_id', '=', id).where('type', '=', 'user.created').executeTakeFirstOrThrow();
    const [ea, eb] = [await eventOf(a), await eventOf(b)];
    await ctx.db.updateTable('events').set({ personal_enc: ea.personal_enc }).where('id', '=', eb.id).execute();
    const res = await api.get(`/v1/events/${eb.id}`);
    expect(res.statusCode).toBe(200);
    expect(res.json().data).toEqual({ user_id: b, type: 'individual', redacted: true });
  });
});
