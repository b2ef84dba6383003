// List file formats: plain domains, hosts-file lines and adblock-style rules, all in one file if
// need be. Pure: text in, entries and problems out.
import { domainToASCII } from 'node:url';
import { ALLOW_SUFFIX_HINT, allowsSuffix, checkSuffix, type SuffixKind } from './public-suffix.js';

export type ListFormat = 'auto' | 'plain' | 'hosts' | 'adblock';

/** One rule from a list: `domain` blocks itself and below; `subdomainsOnly` (from `*.d`) only below. */
export interface ListEntry {
  domain: string;
  subdomainsOnly: boolean;
  line: number;
}

export interface ListProblem {
  line: number;
  text: string;
  message: string;
  /** Set for a rule refused because it names a public suffix or reserved name (an error, not a typo). */
  code?: SuffixKind;
}

export interface ParsedList {
  entries: ListEntry[];
  problems: ListProblem[];
}

// Names that hosts files map to themselves; blocking them would break the machine, not an app.
const HOSTS_NOISE = new Set(['localhost', 'localhost.localdomain', 'local', 'broadcasthost', 'ip6-localhost', 'ip6-loopback', '0.0.0.0']);
const HOSTS_ADDRESS = /^(?:0\.0\.0\.0|127\.\d+\.\d+\.\d+|::1?|0|fe80::1%lo0|ff0[0-9]::[0-9a-f:]*)$/i;
const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

/**
 * Normalise a domain: trim, lower-case, strip one trailing dot, IDN → punycode. Returns an error
 * message instead when it is not a valid name.
 */
export function normaliseDomain(input: string): { domain: string } | { error: string } {
  let d = input.trim().toLowerCase();
  if (d.endsWith('.')) d = d.slice(0, -1);
  if (d === '') return { error: 'empty domain' };
  // eslint-disable-next-line no-control-regex -- the range test is the point: any non-ASCII means IDN
  if (/[^\x00-\x7f]/.test(d)) {
    const ascii = domainToASCII(d);
    if (ascii === '') return { error: `"${input}" is not a valid international domain name` };
    d = ascii;
  }
  if (d.length > 253) return { error: `"${input}" is longer than 253 characters` };
  const labels = d.split('.');
  for (const label of labels) {
    if (!LABEL.test(label)) return { error: `"${input}" is not a valid domain name (label "${label}")` };
  }
  if (/^\d+$/.test(labels[labels.length - 1]!)) return { error: `"${input}" is an IP address, not a domain` };
  return { domain: d };
}

/** Parse one rule (already stripped of comments). `undefined` for a line that holds no rule. */
export function parseRule(text: string, format: ListFormat): { entries: Omit<ListEntry, 'line'>[] } | { error: string } | undefined {
  const t = text.trim();
  if (t === '') return undefined;
  if (t.startsWith('!') || t.startsWith('[')) {
    // adblock comment / header such as "[Adblock Plus 2.0]"
    return format === 'auto' || format === 'adblock' ? undefined : { error: 'adblock syntax in a ' + format + ' list' };
  }
  if ((format === 'auto' || format === 'adblock') && (t.startsWith('||') || t.startsWith('@@'))) {
    return parseAdblock(t);
  }
  if (format === 'adblock') return { error: 'expected an adblock rule such as "||example.com^"' };
  const fields = t.split(/\s+/);
  if (fields.length > 1 || (format === 'hosts' && fields.length === 1)) {
    if (format === 'plain') return { error: 'expected one domain per line' };
    if (!HOSTS_ADDRESS.test(fields[0]!)) {
      return { error: `expected a hosts-file line ("0.0.0.0 example.com"), "${fields[0]}" is not a sinkhole address` };
    }
    const entries: Omit<ListEntry, 'line'>[] = [];
    for (const host of fields.slice(1)) {
      if (HOSTS_NOISE.has(host.toLowerCase())) continue;
      // `*.d` is not hosts-file syntax, but sluice's own export writes it for subdomain-only rules.
      const wildcard = host.startsWith('*.');
      const n = normaliseDomain(wildcard ? host.slice(2) : host);
      if ('error' in n) return n;
      entries.push({ domain: n.domain, subdomainsOnly: wildcard });
    }
    return { entries };
  }
  const single = fields[0]!;
  if (format === 'hosts') return { error: 'expected a hosts-file line' };
  if (single.startsWith('*.')) {
    const n = normaliseDomain(single.slice(2));
    return 'error' in n ? n : { entries: [{ domain: n.domain, subdomainsOnly: true }] };
  }
  const n = normaliseDomain(single);
  return 'error' in n ? n : { entries: [{ domain: n.domain, subdomainsOnly: false }] };
}

function parseAdblock(t: string): { entries: Omit<ListEntry, 'line'>[] } | { error: string } {
  if (t.startsWith('@@')) return { error: 'adblock exception rules (@@) are not supported in a block list; use a profile allow entry' };
  const m = /^\|\|(\*\.)?([^/^$|*]+)\^?(\$.*)?$/.exec(t);
  if (!m) return { error: 'unsupported adblock rule; only "||domain^" is understood' };
  if (m[3] !== undefined && m[3] !== '$important' && m[3] !== '$all') {
    return { error: `adblock modifier "${m[3]}" is not supported` };
  }
  const n = normaliseDomain(m[2]!);
  return 'error' in n ? n : { entries: [{ domain: n.domain, subdomainsOnly: m[1] !== undefined }] };
}

/** Strip a `#` comment. A `#` inside an adblock rule is not a comment only in cosmetic rules, which we reject anyway. */
function stripComment(line: string): string {
  const i = line.indexOf('#');
  return i < 0 ? line : line.slice(0, i);
}

/**
 * The entries of one line that may be loaded: a public suffix or reserved name is reported in
 * `problems` instead, unless the line's comment (`comment`, the text after `#`) allows it.
 */
export function admitEntries<E extends { domain: string }>(entries: readonly E[], line: number, raw: string, comment: string, problems: ListProblem[]): E[] {
  let kept: E[] | undefined;
  for (let i = 0; i < entries.length; i++) {
    const v = checkSuffix(entries[i]!.domain);
    if (v === undefined || allowsSuffix(comment)) {
      kept?.push(entries[i]!);
      continue;
    }
    kept ??= entries.slice(0, i);
    problems.push({ line, text: raw.trim(), message: `${v.message}; ${ALLOW_SUFFIX_HINT}`, code: v.kind });
  }
  return kept ?? (entries as E[]);
}

/**
 * Parse a whole list file's text. Lines that cannot be parsed are reported and skipped, and so are
 * rules naming a public suffix or reserved name (see public-suffix.ts).
 */
export function parseList(text: string, format: ListFormat = 'auto'): ParsedList {
  const entries: ListEntry[] = [];
  const problems: ListProblem[] = [];
  let lineNo = 0;
  let start = 0;
  // Walk lines by index rather than split(): a 1M-line list would otherwise hold every line twice.
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    lineNo++;
    const raw = text.slice(start, end);
    start = end + 1;
    const rule = stripComment(raw);
    const r = parseRule(rule, format);
    if (r === undefined) continue;
    if ('error' in r) {
      problems.push({ line: lineNo, text: raw.trim(), message: r.error });
      continue;
    }
    const comment = rule.length < raw.length ? raw.slice(rule.length + 1) : '';
    for (const e of admitEntries(r.entries, lineNo, raw, comment, problems)) entries.push({ ...e, line: lineNo });
  }
  return { entries, problems };
}
