import { luaScript } from '../run-script';
import { ADMIT_LUA } from './admit.lua';
import { BUDGET_STATE_LUA } from './budget-state.lua';
import { EXTEND_HOLD_LUA } from './extend-hold.lua';
import { GENERATION_LUA } from './generation.lua';
import { RELEASE_LUA } from './release.lua';
import { RESEED_LUA } from './reseed.lua';
import { SETTLE_LUA } from './settle.lua';

/** One script per atomic decision; each file's header gives its KEYS and ARGV. */
export const SCRIPTS = {
  admit: luaScript('admit', ADMIT_LUA),
  settle: luaScript('settle', SETTLE_LUA),
  extendHold: luaScript('extend-hold', EXTEND_HOLD_LUA),
  release: luaScript('release', RELEASE_LUA),
  generation: luaScript('generation', GENERATION_LUA),
  reseed: luaScript('reseed', RESEED_LUA),
  budgetState: luaScript('budget-state', BUDGET_STATE_LUA),
} as const;
