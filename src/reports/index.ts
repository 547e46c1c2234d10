export { makeReportsService, type ReportsService } from './reports-service';
export { makeRollupJob, type RollupJob, type RollupJobDeps } from './rollup-job';
export { projectCost, type ModelShare } from './projection';
export { csvCell, toCsv, CSV_EOL } from './csv';
export { DEFAULT_ROLLUP_LAG_MS } from './day-plan';
export * from './types';
