// What `GET /api/query` answers: a query the resolver ran through its real pipeline for the admin,
// as a decision (network, profile, policy, list, rule), the answer's records as text, and where
// the answer came from. Pure: the context, the duration and the version come in as values.
import { rcodeName, typeName } from '../dns/codes.js';
import { messageText } from '../dns/message-text.js';
import type { RequestContext } from '../pipeline/context.js';
import type { QueryReport, QueryRequest } from './backend.js';

/** The query types `sluice query --type` takes by name, besides `TYPE123`. */
export function parseQueryType(text: string, types: Readonly<Record<string, number>>): number | undefined {
  const t = text.trim().toUpperCase();
  if (Object.hasOwn(types, t)) return types[t];
  const m = /^(?:TYPE)?(\d{1,5})$/.exec(t);
  const n = m ? Number(m[1]) : NaN;
  return Number.isInteger(n) && n > 0 && n < 65536 ? n : undefined;
}

export function queryReport(req: QueryRequest, ctx: RequestContext, durationMs: number, version: string): QueryReport {
  const d = ctx.decision;
  const decision = ctx.outcome === 'blocked' ? 'blocked' : ctx.outcome === 'refused' || ctx.network === undefined ? 'refused' : 'allowed';
  const text = ctx.response ? messageText(ctx.response) : undefined;
  const blocked = d?.kind === 'blocked' ? d : undefined;
  const allowed = d?.kind === 'allowed' ? d : undefined;
  let note: string | null = null;
  if (allowed?.allowRule) note = `allow entry ${allowed.allowRule} overrides list ${allowed.overriddenList}`;
  else if (allowed?.exception) note = `exception of policy ${allowed.exception.policy} for ${allowed.exception.scope}: ${allowed.exception.reason}`;
  else if (allowed?.outsideSchedule) note = `policy ${allowed.outsideSchedule.id} is outside its schedule now`;
  else if (allowed?.wouldBlock) note = `dry-run policy ${allowed.wouldBlock.policy.id} would block (list ${allowed.wouldBlock.list}, rule ${allowed.wouldBlock.rule})`;
  const source: QueryReport['source'] = ctx.response === undefined ? 'none' : ctx.stale ? 'stale' : ctx.cacheHit ? 'cache' : ctx.upstream !== undefined ? 'upstream' : 'local';
  return {
    name: req.name,
    type: typeName(req.type),
    client: req.client,
    decision,
    network: ctx.network?.name ?? null,
    profile: ctx.network?.profile.name ?? null,
    policy: blocked?.policy ?? allowed?.wouldBlock?.policy ?? null,
    list: blocked?.list ?? null,
    rule: blocked?.rule ?? null,
    note,
    rcode: ctx.rcode === undefined ? 'none' : rcodeName(ctx.rcode),
    answers: text?.answers ?? [],
    authority: text?.authority ?? [],
    ede: text?.ede ?? null,
    source,
    upstream: ctx.upstream ?? null,
    durationMs: Math.round(durationMs * 1000) / 1000,
    version,
  };
}
