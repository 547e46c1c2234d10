import { readFileSync } from 'node:fs';
import type Redis from 'ioredis';
import type { Config } from '../config';
import type { Db } from '../infra/prisma';
import type { Epoch } from '../infra/epoch';
import type { Logger } from '../infra/logger';
import { periodic } from '../infra/periodic';
import { makeAlertSettings, type AlertSettingsService } from './alert-settings';
import { makeAlertPages, type AlertPages } from './alert-pages';
import { makeBudgetEventHub, type BudgetEventHub } from './budget-events';
import { makeDeliveryJob } from './delivery-job';
import { makeForecastJob } from './forecast-job';
import { makeWebhookSender } from './webhook-sender';

/** Budget alerts as the API and app.ts see them. Thresholds are decided by the ledger's triggers (see the migration). */
export interface Alerts {
  readonly settings: AlertSettingsService;
  readonly pages: AlertPages;
  readonly events: BudgetEventHub;
  /** One delivery pass (tests, and the job's own timer). */
  deliverOnce(): Promise<{ published: number; attempted: number }>;
  /** One forecast pass (tests, and the job's own timer). */
  forecastOnce(now?: Date): Promise<number>;
  start(): void;
  /** Ends open budgetEvents streams and the jobs. */
  stop(): Promise<void>;
}

export function makeAlerts(deps: { db: Db; epoch: Epoch; logger: Logger; publisher: Pick<Redis, 'publish'>; subscriber: Redis; config: Config }): Alerts {
  const c = deps.config;
  const extraCaPem = c.ALERT_WEBHOOK_CA_FILE ? readCa(c.ALERT_WEBHOOK_CA_FILE) : null;
  const sender = makeWebhookSender({
    allowPrivate: c.ALERT_WEBHOOKS_ALLOW_PRIVATE,
    extraCaPem,
    connectTimeoutMs: c.ALERT_WEBHOOK_TIMEOUT_MS,
    responseTimeoutMs: c.ALERT_WEBHOOK_TIMEOUT_MS,
  });
  const events = makeBudgetEventHub({ publisher: deps.publisher, subscriber: deps.subscriber, logger: deps.logger });
  const delivery = makeDeliveryJob({
    db: deps.db,
    hub: events,
    sender,
    logger: deps.logger,
    options: { maxAttempts: c.ALERT_WEBHOOK_MAX_ATTEMPTS, retryBaseMs: c.ALERT_WEBHOOK_RETRY_BASE_MS },
  });
  const forecast = makeForecastJob(deps.db);
  const jobs = [
    periodic(
      () => delivery.deliverOnce(),
      c.ALERT_DELIVERY_INTERVAL_MS,
      (e) => deps.logger.warn({ err: e }, 'budget alert delivery pass failed'),
    ),
    periodic(
      () => forecast.forecastOnce(),
      c.ALERT_FORECAST_INTERVAL_MS,
      (e) => deps.logger.warn({ err: e }, 'budget forecast pass failed'),
    ),
  ];
  return {
    settings: makeAlertSettings({ db: deps.db, epoch: deps.epoch, logger: deps.logger, allowPrivate: c.ALERT_WEBHOOKS_ALLOW_PRIVATE }),
    pages: makeAlertPages(deps.db),
    events,
    deliverOnce: () => delivery.deliverOnce(),
    forecastOnce: (now) => forecast.forecastOnce(now),
    start: () => jobs.forEach((j) => j.start()),
    async stop() {
      await events.close();
      await Promise.all(jobs.map((j) => j.stop()));
      await sender.close();
    },
  };
}

function readCa(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`ALERT_WEBHOOK_CA_FILE: cannot read ${file} (${(e as Error).message})`, { cause: e });
  }
}
