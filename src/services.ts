import type { Authenticator } from './tenants/authenticate';
import type { AdminService } from './tenants/admin-service';
import type { KeyAdminService } from './tenants/key-admin';
import type { TenantReader } from './tenants/tenant-reader';
import type { TenantStore } from './tenants/tenant-store';
import type { CatalogStore } from './catalog/catalog-store';
import type { PriceAdmin } from './catalog/price-admin';
import type { ModelSwitch } from './catalog/model-enable';
import type { AccessAdmin } from './tenants/access-admin';
import type { ChatService } from './chat/chat-service';
import type { ReportsService } from './reports';
import type { RoutingOptions } from './routing';
import type { Epoch } from './infra/epoch';
import type { Pager } from './reports/pages';
import type { Alerts } from './alerts';

/** The use cases the API calls; built once in app.ts. */
export interface Services {
  readonly auth: Authenticator;
  readonly epoch: Epoch;
  readonly catalog: CatalogStore;
  readonly tenants: TenantStore;
  readonly tenantReader: TenantReader;
  readonly admin: AdminService;
  /** Tenant keys' names, limits and rotation; the named admin keys. */
  readonly keyAdmin: KeyAdminService;
  /** Model prices (output, input, cache), set by the admin. */
  readonly prices: PriceAdmin;
  /** Suspension and model access lists of tenants. */
  readonly access: AccessAdmin;
  /** The global enable/disable of a model. */
  readonly modelSwitch: ModelSwitch;
  readonly chat: ChatService;
  readonly reports: ReportsService;
  readonly routing: RoutingOptions;
  /** Relay-style pages of requests, the audit trail and tenants. */
  readonly pages: Pager;
  /** Budget alert settings, logs and the budgetEvents fan-out. */
  readonly alerts: Alerts;
}
