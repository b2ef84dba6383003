// The admin API's runtime overrides (POST /api/admin/overrides, DELETE …/<id>, GET /api/overrides):
// the same entries, checks and stores as `sluice disable|allow|deny` (policy/overrides.ts,
// shared/override-store.ts), in the process that owns the admin server. A standalone server's
// file is reloaded before the answer, so a 201 means the override is in force.
import type { OverrideActions } from '../admin/backend.js';
import { buildOverride, overrideScope, overrideSummary } from '../policy/overrides.js';
import type { LoadedRules } from '../rules/load.js';
import { changeOverrides, newOverrideId, readOverrides } from '../shared/override-store.js';

export function overrideActions(loaded: () => LoadedRules, reload: () => Promise<unknown>, now: () => number): OverrideActions {
  return {
    list: () => readOverrides(loaded()),
    async add(req, by) {
      const r = loaded();
      const built = buildOverride(req, r.loaded.config, { now: now(), id: newOverrideId(req.kind), by, tz: Intl.DateTimeFormat().resolvedOptions().timeZone });
      if ('error' in built) return built;
      const e = built.entry;
      const change = await changeOverrides(r, { add: e }, { command: `${overrideSummary(e)} by ${by}`, domains: e.kind === 'disable' ? [] : [e.domain], reason: e.reason }, undefined, now());
      if (change.where === 'file') await reload();
      return { entry: e, stored: change.where, ...(change.edit ? { version: change.edit.version } : {}) };
    },
    async remove(ids, reason, by) {
      const r = loaded();
      const all = await readOverrides(r);
      const unknown = ids.filter((id) => !all.some((e) => e.id === id));
      if (unknown.length > 0) return { removed: [], unknown };
      const removing = all.filter((e) => ids.includes(e.id));
      const what = removing.map((e) => `${e.kind} ${overrideScope(e)} (${e.id})`).join(', ');
      const change = await changeOverrides(
        r,
        { remove: removing },
        { command: `overrides remove ${what} by ${by}`, domains: removing.flatMap((e) => (e.kind === 'disable' ? [] : [e.domain])), ...(reason ? { reason } : {}) },
        undefined,
        now(),
      );
      if (change.where === 'file') await reload();
      return { removed: ids, unknown: [] };
    },
  };
}
