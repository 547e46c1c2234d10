import { serviceUnavailable } from '../errors';
import type { Db } from '../infra/prisma';
import type { Epoch } from '../infra/epoch';
import type { Logger } from '../infra/logger';

export type AdminTx = Parameters<Parameters<Db['$transaction']>[0]>[0];

/**
 * Runs an admin change in one transaction that announces it on the epoch before it commits (see infra/epoch.ts): a
 * change Redis cannot announce is rolled back and answered SERVICE_UNAVAILABLE, so none is ever committed and
 * unseen by an instance. Every admin write goes through here.
 */
export function makeAdminCommit(deps: { db: Db; epoch: Epoch; logger?: Logger }) {
  return async <T>(work: (tx: AdminTx) => Promise<T>): Promise<T> => {
    let changeId: string | null = null;
    try {
      return await deps.db.$transaction(async (tx) => {
        const out = await work(tx);
        changeId = await deps.epoch.begin().catch((e) => {
          throw serviceUnavailable('Redis (the change was not applied)', e);
        });
        return out;
      });
    } finally {
      // Committed or rolled back, the change is no longer pending; if this is lost, the pending entry expires.
      if (changeId !== null)
        await deps.epoch.end(changeId).catch((e) => deps.logger?.warn({ err: e }, 'epoch end failed; the pending admin change expires by itself'));
    }
  };
}
