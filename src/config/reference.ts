// The config reference (docs/configuration.md), generated from the zod schema so it cannot drift
// from the code: one row per key with its path, type, default and the schema's .describe() text.
// `npm run docs` writes it; a test fails when the committed page is out of date.
import { z } from 'zod';
import { configSchema } from './schema.js';

/** The slice of JSON Schema (draft 2020-12, as z.toJSONSchema emits it) that the walk reads. */
interface JsonSchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  format?: string;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  minLength?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: JsonSchema | boolean;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
}

export interface ConfigKey {
  /** e.g. `networks.<network>.cidrs`, `listeners[].port`. */
  path: string;
  /** The top-level key the row belongs to. */
  section: string;
  type: string;
  /** JSON of the default, "required", or "" (optional, no default). */
  default: string;
  description: string;
  /** Whether the description comes from the schema (not IMPLIED_DESCRIPTIONS). */
  described: boolean;
}

// How a map's key is written in a path: `networks.<network>.cidrs`.
const MAP_KEY: Record<string, string> = {
  networks: '<network>',
  profiles: '<profile>',
  policies: '<policy>',
  lists: '<list>',
};

/**
 * Descriptions for keys whose schema node has no .describe() text. A test fails when a key has
 * neither, and when an entry here is for a key that is gone or has since been described in the
 * schema, so this list cannot drift either: the schema's text always wins.
 */
export const IMPLIED_DESCRIPTIONS: Record<string, string> = {
  'profiles.<profile>.description': 'Free text for humans.',
  'lists.<list>.description': 'Free text for humans.',
  'policies.<policy>.schedule.windows': 'Weekly time windows in which the policy applies.',
  'policies.<policy>.schedule.windows[].days': 'Weekdays on which the window starts.',
  'policies.<policy>.schedule.windows[].from': 'Start of the window, "HH:MM".',
  'upstreams.conditional[].servers': 'DNS servers for the zone, tried in order (e.g. the domain controllers).',
  'admin.port': 'Port of the admin server (0 picks a free port, for tests).',
  'redis.sentinel.sentinels': 'Addresses of the Sentinels.',
  'redis.sentinel.sentinels[].host': 'Host name or address.',
  'redis.sentinel.sentinels[].port': 'Port.',
  'redis.cluster.nodes': 'Addresses of some cluster nodes; the rest are discovered.',
  'redis.cluster.nodes[].host': 'Host name or address.',
  'redis.cluster.nodes[].port': 'Port.',
};

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function typeOf(s: JsonSchema): string {
  const alts = s.anyOf ?? s.oneOf;
  if (alts) return alts.map(typeOf).join(' or ');
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  if (s.enum) return s.enum.map((v) => `\`${JSON.stringify(v)}\``).join(', ');
  const t = Array.isArray(s.type) ? s.type.join(' or ') : s.type;
  if (t === 'array') return `list of ${s.items ? typeOf(s.items) : 'values'}${s.minItems ? ` (at least ${s.minItems})` : ''}`;
  if (t === 'object') {
    if (s.properties) return 'object';
    if (typeof s.additionalProperties === 'object') return `map of name → ${typeOf(s.additionalProperties)}`;
    return 'object';
  }
  if (t === 'integer' || t === 'number') {
    const lo = s.minimum;
    const hi = s.maximum !== undefined && s.maximum < MAX_SAFE ? s.maximum : undefined;
    const range = lo !== undefined && hi !== undefined ? ` ${lo}–${hi}` : lo !== undefined ? ` ≥ ${lo}` : hi !== undefined ? ` ≤ ${hi}` : '';
    return `${t}${range}`;
  }
  if (t === 'string') {
    if (s.format === 'uri') return 'URL';
    if (s.format === 'ipv4') return 'IPv4 address';
    if (s.format === 'ipv6') return 'IPv6 address';
    return 'string';
  }
  return t ?? 'value';
}

/** Every key of the config, depth first in schema order, with containers before their contents. */
export function configKeys(): ConfigKey[] {
  // Input side: a key with a default is optional to write, which is what a reader needs to know.
  const root = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const out: ConfigKey[] = [];
  const visit = (s: JsonSchema, path: string, section: string, required: boolean): void => {
    // A list without its own text is described by its items' text (`exceptions`).
    const schemaText = s.description ?? (s.type === 'array' ? s.items?.description : undefined);
    const dflt = s.default !== undefined ? `\`${JSON.stringify(s.default)}\`` : required ? 'required' : '';
    out.push({ path, section, type: typeOf(s), default: dflt, description: schemaText ?? IMPLIED_DESCRIPTIONS[path] ?? '', described: schemaText !== undefined });
    walkChildren(s, path, section);
  };
  const walkChildren = (s: JsonSchema, path: string, section: string): void => {
    if (s.properties) {
      for (const [k, child] of Object.entries(s.properties)) visit(child, `${path}.${k}`, section, s.required?.includes(k) ?? false);
    } else if (typeof s.additionalProperties === 'object' && (s.type === 'object' || s.type === undefined)) {
      const key = MAP_KEY[path] ?? '<name>';
      walkChildren(s.additionalProperties, `${path}.${key}`, section);
    } else if (s.type === 'array' && s.items) {
      walkChildren(s.items, `${path}[]`, section);
    }
  };
  for (const [k, s] of Object.entries(root.properties ?? {})) visit(s, k, k, root.required?.includes(k) ?? false);
  return out;
}

const escapeCell = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ');

/** Sections: one per top-level object, map or list; top-level scalars together under "General". */
export function renderConfigReference(): string {
  const keys = configKeys();
  const sections = new Map<string, ConfigKey[]>();
  for (const k of keys) {
    const container = keys.some((o) => o.section === k.section && o.path !== k.section);
    const name = container ? k.section : 'General';
    if (!sections.has(name)) sections.set(name, []);
    sections.get(name)!.push(k);
  }
  const lines = [
    '# Configuration reference',
    '',
    '<!-- Generated by `npm run docs` from src/config/schema.ts; do not edit by hand. -->',
    '',
    'sluice reads one YAML file: `--config FILE`, else `$SLUICE_CONFIG`, else `/etc/sluice/sluice.yaml` when it exists, else `config/sluice.yaml` (a checkout).',
    'Relative paths in it (`catalog`, `lists.*.file`, `state_dir`, `site_dir`) are relative to the file. Every',
    'object is strict: an unknown key is an error, so a typo cannot silently fall back to a default.',
    '`sluice config validate` reports every problem at once with its file, line and key path.',
    '',
    'Besides the types below, names must refer to something that exists: a listener\'s `network`, a',
    'network\'s `profile`, the lists of a profile or a policy (in `lists` or the `catalog`), and the',
    'networks and profiles of a policy. `cache.min_ttl` must not exceed `cache.max_ttl`, and',
    '`upstreams.timeout_ms` must not exceed `upstreams.total_timeout_ms`.',
    '',
    'In the key paths, `<network>`, `<profile>`, `<policy>` and `<list>` stand for a name you choose,',
    'and `[]` for an item of a list. A default of `required` means the key must be given.',
    '',
    'The reference deployment, [`config/sluice.yaml`](../config/sluice.yaml), uses most sections.',
    '',
  ];
  const order = [...sections.keys()].sort((a, b) => (a === 'General' ? -1 : b === 'General' ? 1 : 0));
  for (const name of order) {
    const rows = sections.get(name)!;
    const head = rows[0]!;
    lines.push(`## ${name === 'General' ? 'General' : `\`${name}\``}`, '');
    if (name !== 'General' && head.description) lines.push(head.description, '');
    lines.push('| key | type | default | description |', '| --- | --- | --- | --- |');
    for (const r of rows) {
      lines.push(`| \`${r.path}\` | ${escapeCell(r.type)} | ${escapeCell(r.default)} | ${escapeCell(r.description)} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}
