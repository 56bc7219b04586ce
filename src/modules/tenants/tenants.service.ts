import type { Db } from '../../db/database.js';
import { newId } from '../../lib/ids.js';
import { AppError } from '../../http/errors.js';
import { cliActor } from '../audit/actor.js';
import { recordChange } from '../audit/write-path.js';
import { createApiKeysService } from '../api-keys/api-keys.service.js';

export function createTenantsService({ db }: { db: Db }) {
  const keys = createApiKeysService({ db });
  return {
    /** A tenant and its first OWNER key (the only way to get one without an existing key). */
    async create(name: string) {
      const id = newId('ten');
      const inserted = await db.transaction().execute(async (tx) => {
        const row = await tx
          .insertInto('tenants')
          .values({ id, name, policy: '{}' })
          .onConflict((oc) => oc.column('name').doNothing())
          .returning(['id', 'name', 'created_at'])
          .executeTakeFirst();
        if (row) await recordChange(tx, cliActor(id), { action: 'tenant.created', targetType: 'tenant', targetId: id, details: { name } });
        return row;
      });
      if (!inserted) throw new AppError(409, 'tenant.exists', `A tenant named ${name} already exists.`);
      const key = await keys.create(cliActor(id), { role: 'OWNER', name: 'owner (created with the tenant)' });
      return { tenant: inserted, key };
    },

    async get(id: string) {
      return db.selectFrom('tenants').select(['id', 'name', 'created_at']).where('id', '=', id).executeTakeFirst();
    },

    /** Every tenant, oldest first (what `kyclo tenants list` prints). */
    async list() {
      return db.selectFrom('tenants').select(['id', 'name', 'created_at']).orderBy('created_at').orderBy('id').execute();
    },

    async count(): Promise<number> {
      const r = await db.selectFrom('tenants').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
      return Number(r.n);
    },
  };
}
