// One query log event per query. Built on the hot path from the request context: plain fields,
// no formatting; serialisation happens in the sinks, off the hot path.
import { typeName } from '../dns/codes.js';
import type { RequestContext, Transport } from '../pipeline/context.js';

export type LoggedDecision = 'allowed' | 'blocked' | 'refused' | 'error' | 'malformed';

export interface QueryEvent {
  /** Epoch milliseconds. */
  time: number;
  instance: string;
  /** Client address, or a pseudonym token (`p:…`) when the network pseudonymises. */
  client: string;
  network: string | null;
  profile: string | null;
  /** Policy that blocked, or that a dry-run/exception concerned. */
  policy: string | null;
  list: string | null;
  rule: string | null;
  name: string;
  type: string;
  decision: LoggedDecision;
  /** A dry-run policy (or, with `exception`, a runtime disable) would have blocked this allowed query. */
  wouldBlock: boolean;
  /** An exception, or a runtime override (`sluice disable`, `sluice allow`), let this query through. */
  exception: boolean;
  cache: boolean;
  upstream: string | null;
  rcode: number | null;
  answers: number;
  durationMs: number;
  transport: Transport;
}

export function eventFromContext(ctx: RequestContext, instance: string, client: string, durationMs: number): QueryEvent {
  const d = ctx.decision;
  const blocked = d?.kind === 'blocked' ? d : undefined;
  const allowed = d?.kind === 'allowed' ? d : undefined;
  // A runtime override let the query through: logged as would-block and exception (a disable) or
  // as an exception with the list it beat (an allow entry).
  const overridden = allowed?.disabled ?? allowed?.allowEntry;
  const res = ctx.response;
  return {
    time: ctx.startedAt,
    instance,
    client,
    network: ctx.network?.name ?? null,
    profile: d?.profile ?? null,
    policy: blocked?.policy?.id ?? allowed?.wouldBlock?.policy.id ?? allowed?.exception?.policy ?? overridden?.policy?.id ?? null,
    list: blocked?.list ?? allowed?.wouldBlock?.list ?? overridden?.list ?? null,
    rule: blocked?.rule ?? allowed?.wouldBlock?.rule ?? overridden?.rule ?? null,
    name: ctx.query.name,
    type: typeName(ctx.query.type),
    decision: ctx.outcome ?? 'error',
    wouldBlock: allowed?.wouldBlock !== undefined || allowed?.disabled !== undefined,
    exception: allowed?.exception !== undefined || overridden !== undefined,
    cache: ctx.cacheHit === true,
    upstream: ctx.upstream ?? null,
    rcode: ctx.rcode ?? null,
    answers: res && res.length >= 8 ? (res[6]! << 8) | res[7]! : 0,
    durationMs,
    transport: ctx.client.transport,
  };
}

// What JSON.stringify escapes in a string: quote, backslash, control characters, lone surrogates.
// eslint-disable-next-line no-control-regex -- control characters are exactly what must be found
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;
const str = (v: string | null): string => (v === null ? 'null' : NEEDS_ESCAPE.test(v) ? JSON.stringify(v) : `"${v}"`);
const num = (v: number | null): string => (v === null || !Number.isFinite(v) ? 'null' : String(v));

/**
 * The event as one line of JSON: exactly JSON.stringify(e) for an event of this shape (a test pins
 * that), in a fixed field order. Written out because the JSONL file sink serialises every query:
 * the generic JSON.stringify walk was the largest single cost of a logged query.
 */
export function eventJson(e: QueryEvent): string {
  return (
    `{"time":${num(e.time)},"instance":${str(e.instance)},"client":${str(e.client)},"network":${str(e.network)},"profile":${str(e.profile)}` +
    `,"policy":${str(e.policy)},"list":${str(e.list)},"rule":${str(e.rule)},"name":${str(e.name)},"type":${str(e.type)},"decision":${str(e.decision)}` +
    `,"wouldBlock":${e.wouldBlock},"exception":${e.exception},"cache":${e.cache},"upstream":${str(e.upstream)},"rcode":${num(e.rcode)}` +
    `,"answers":${num(e.answers)},"durationMs":${num(e.durationMs)},"transport":${str(e.transport)}}`
  );
}
