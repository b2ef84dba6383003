// Names a list must not block by accident: a public suffix (`com`, `co.uk`, and private-section
// suffixes such as `github.io`) or a name reserved for local use (`localhost`, `local`, the
// `arpa` zones). A rule blocks its name and everything below it, so one such line blocks whole
// registries or breaks the machine. The Public Suffix List is tldts's; a line that means it says so
// with a trailing `# allow-suffix` comment (what `sluice lists add --allow-suffix` writes).
// Pure: checked when a list is parsed, never on the query path.
import { createRequire } from 'node:module';
import { parse } from 'tldts';

export type SuffixKind = 'public-suffix' | 'reserved';

export interface SuffixVerdict {
  kind: SuffixKind;
  message: string;
}

/** The comment that lets a line block a suffix on purpose: `com  # allow-suffix: …`. */
export const ALLOW_SUFFIX = 'allow-suffix';

// RFC 6761 (localhost), RFC 6762 (local: multicast DNS), RFC 8375 (home.arpa); the arpa zones hold
// every reverse lookup. test, example and invalid stay blockable: nothing real lives there.
const RESERVED: ReadonlyMap<string, string> = new Map([
  ['localhost', 'reserved for loopback (RFC 6761)'],
  ['local', 'reserved for multicast DNS (RFC 6762)'],
  ['arpa', 'the infrastructure zone holding every reverse lookup'],
  ['in-addr.arpa', 'the zone of every IPv4 reverse lookup'],
  ['ip6.arpa', 'the zone of every IPv6 reverse lookup'],
  ['home.arpa', 'reserved for home networks (RFC 8375)'],
]);

const PSL_OPTIONS = { allowPrivateDomains: true, extractHostname: false, validateHostname: false, detectIp: false, mixedInputs: false } as const;

/**
 * Why blocking `domain` (normalised: lower case, no trailing dot, punycode) would be a mistake, or
 * undefined when it is an ordinary name. A `*.d` rule is checked as `d`: it blocks all below d too.
 */
export function suffixVerdict(domain: string): SuffixVerdict | undefined {
  const reserved = RESERVED.get(domain);
  if (reserved !== undefined) return { kind: 'reserved', message: `"${domain}" is ${reserved}; blocking it would break every name under it` };
  const p = parse(domain, PSL_OPTIONS);
  // tldts answers the last label for a TLD it does not know (the PSL's default rule), with
  // neither flag set: such names (lan, corp, test) are not registries, so they may be blocked.
  if (p.publicSuffix !== domain || !(p.isIcann || p.isPrivate)) return undefined;
  const section = p.isIcann ? 'ICANN' : 'private';
  return { kind: 'public-suffix', message: `"${domain}" is a public suffix (${section} section of the Public Suffix List); blocking it would block every domain registered under it` };
}

/** The advice appended to a suffix problem in a list file. */
export const ALLOW_SUFFIX_HINT = `if that is meant, end the line with "# ${ALLOW_SUFFIX}"`;

/** Whether a line's comment (the text after `#`) says the line blocks a suffix on purpose. */
export function allowsSuffix(comment: string): boolean {
  return comment.trimStart().startsWith(ALLOW_SUFFIX);
}

// The pre-filter. tldts answers in ~0.2 µs a name, which on a 1,000,000-line list was 60 % more
// load time. A name can only be a suffix if it is a PSL rule, or its parent holds a `*` rule; and
// only if each of its shorter suffixes is a name the PSL has rules below. Bitmaps of the hashes of
// those three kinds of name answer that in a pass from the right that stops, for most names, after
// the second label (`nene.io` has nothing below it), and only the ~0.4 % that pass (rules, hash
// collisions) are asked. The rules come from tldts's own trie: when a later tldts lays it out
// differently the filter is off (every name is asked, slower but as exact) and a unit test says so.
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const RULE_BITS = 1 << 20; // 11,300 rules: about 1 % of other names collide
const WILDCARD_BITS = 1 << 16; // 320 parents
const INNER_BITS = 1 << 18; // names with rules below them

interface Filter {
  rules: Uint8Array;
  wildcardParents: Uint8Array;
  inner: Uint8Array;
}

let filter: Filter | null | undefined;

/** FNV-1a over the characters from last to first (so a pass over a name also hashes its parent). */
function hashText(s: string): number {
  let h = FNV_OFFSET;
  for (let i = s.length - 1; i >= 0; i--) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h >>> 0;
}

const setBit = (map: Uint8Array, h: number) => (map[(h >>> 3) & (map.length - 1)]! |= 1 << (h & 7));
const hasBit = (map: Uint8Array, h: number) => (map[(h >>> 3) & (map.length - 1)]! & (1 << (h & 7))) !== 0;

interface Trie {
  nodeFlags: ArrayLike<number>;
  edgeStart: ArrayLike<number>;
  edgeLength: ArrayLike<number>;
  edgeChild: ArrayLike<number>;
  labelText: string;
  rulesRoot: number;
}

function readTrie(): Trie | undefined {
  try {
    const t = createRequire(import.meta.url)('tldts/dist/cjs/src/data/trie.js') as Partial<Trie>;
    const arrays = [t.nodeFlags, t.edgeStart, t.edgeLength, t.edgeChild];
    if (arrays.some((a) => !ArrayBuffer.isView(a)) || typeof t.labelText !== 'string' || typeof t.rulesRoot !== 'number') return undefined;
    return t as Trie;
  } catch {
    return undefined;
  }
}

function buildFilter(): Filter | null {
  const t = readTrie();
  if (!t) return null;
  const edges = t.edgeLength.length;
  const offset = new Uint32Array(edges);
  for (let e = 0, o = 0; e < edges; e++) {
    offset[e] = o;
    o += t.edgeLength[e]!;
  }
  const f: Filter = { rules: new Uint8Array(RULE_BITS / 8), wildcardParents: new Uint8Array(WILDCARD_BITS / 8), inner: new Uint8Array(INNER_BITS / 8) };
  for (const name of RESERVED.keys()) {
    setBit(f.rules, hashText(name));
    for (let dot = name.indexOf('.'); dot >= 0; dot = name.indexOf('.', dot + 1)) setBit(f.inner, hashText(name.slice(dot + 1)));
  }
  // Depth-first over the rules trie; each node stands for a name ("" at the root).
  const stack: [number, string][] = [[t.rulesRoot, '']];
  let rules = 0;
  while (stack.length > 0) {
    const [node, name] = stack.pop()!;
    if (rules > 1_000_000) return null; // not the shape this reads: no filter rather than a wrong one
    if (name !== '' && t.edgeStart[node + 1]! > t.edgeStart[node]!) setBit(f.inner, hashText(name));
    for (let e = t.edgeStart[node]!; e < t.edgeStart[node + 1]!; e++) {
      const label = t.labelText.slice(offset[e]!, offset[e]! + t.edgeLength[e]!);
      if (label === '*') {
        setBit(f.wildcardParents, hashText(name));
        continue; // the PSL allows a wildcard only as the leftmost label
      }
      const child = t.edgeChild[e]!;
      const childName = name === '' ? label : `${label}.${name}`;
      if (t.nodeFlags[child] !== 0) {
        setBit(f.rules, hashText(childName));
        rules++;
      }
      stack.push([child, childName]);
    }
  }
  return rules > 1000 ? f : null;
}

function currentFilter(): Filter | null {
  if (filter === undefined) filter = buildFilter();
  return filter;
}

/** Whether the pre-filter is in use (false: tldts's layout changed, every name is asked). */
export function suffixFilterActive(): boolean {
  return currentFilter() !== null;
}

/** False when the name in `b[0, len)` cannot be a suffix or reserved name; true when it may be. */
export function mayBeSuffixBytes(b: Uint8Array, len: number): boolean {
  const f = currentFilter();
  if (!f) return true;
  let h = FNV_OFFSET;
  let parent = 0;
  let dotted = false;
  for (let i = len - 1; i >= 0; i--) {
    const c = b[i]!;
    if (c === 0x2e) {
      // h is the hash of what follows this dot: with no rules below it, nothing longer is a suffix
      if (!hasBit(f.inner, h >>> 0)) return false;
      parent = h; // the first dot's is kept
      dotted = true;
    }
    h = Math.imul(h ^ c, FNV_PRIME);
  }
  return hasBit(f.rules, h >>> 0) || (dotted && hasBit(f.wildcardParents, parent >>> 0));
}

/** mayBeSuffixBytes for a name held as a string. */
export function mayBeSuffix(domain: string): boolean {
  const f = currentFilter();
  if (!f) return true;
  let h = FNV_OFFSET;
  let parent = 0;
  let dotted = false;
  for (let i = domain.length - 1; i >= 0; i--) {
    const c = domain.charCodeAt(i);
    if (c === 0x2e) {
      if (!hasBit(f.inner, h >>> 0)) return false;
      parent = h;
      dotted = true;
    }
    h = Math.imul(h ^ c, FNV_PRIME);
  }
  return hasBit(f.rules, h >>> 0) || (dotted && hasBit(f.wildcardParents, parent >>> 0));
}

/** suffixVerdict behind the pre-filter: what list parsing calls for every rule. */
export function checkSuffix(domain: string): SuffixVerdict | undefined {
  return mayBeSuffix(domain) ? suffixVerdict(domain) : undefined;
}

/** For rules as `sluice lists add` takes them (`d` or `*.d`): why each suffix among them is refused. */
export function suffixRefusals(rules: readonly string[]): string[] {
  return rules.flatMap((r) => {
    const v = suffixVerdict(r.startsWith('*.') ? r.slice(2) : r);
    return v ? [v.message] : [];
  });
}
