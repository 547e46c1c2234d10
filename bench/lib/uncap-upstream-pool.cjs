/**
 * DIAGNOSTIC ONLY (bench --hold-uncapped): preloaded into a gateway child with `node --require`, lifts the
 * connection cap of every undici Pool the process creates (src/upstream/client.ts defaults to 256 connections).
 * It shows what the many-streams part measures once the cap is lifted; the shipped gateway is measured without it.
 */
const undici = require('undici');
const Capped = undici.Pool;
class UncappedPool extends Capped {
  constructor(origin, opts = {}) {
    super(origin, { ...opts, connections: null });
  }
}
undici.Pool = UncappedPool;
