// YAML text → validated Config, with every problem located as file:line path: message.
// Parsing is pure (text in, value out); readConfigFile is the one function that touches the disk.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.js';

export interface ConfigProblem {
  file: string;
  line?: number;
  /** Dotted path with indices, e.g. `networks.guest.cidrs[1]`. */
  path: string;
  message: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
  }
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.line !== undefined ? `${p.file}:${p.line}` : p.file;
  return p.path ? `${where} ${p.path}: ${p.message}` : `${where}: ${p.message}`;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

/** A loaded config and where it came from (list paths resolve against `baseDir`). */
export interface LoadedConfig {
  config: Config;
  file: string;
  baseDir: string;
  /** A problem found after validation (e.g. a list name no catalog defines), located in the file. */
  problemAt(path: (string | number)[], message: string): ConfigProblem;
}

/** Parse and validate config text. Throws ConfigError listing every problem at once. */
export function parseConfig(text: string, file: string): LoadedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({
        file,
        line: e.linePos?.[0]?.line,
        path: '',
        // The yaml library ends its first line with "at line 9, column 1:" (the excerpt that
        // followed is dropped): the line is already in front, so keep only the column.
        message: yamlMessage(e.message, e.linePos?.[0]?.col),
      })),
    );
  }
  const raw: unknown = doc.toJS() ?? {};
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => locateIssue(issue, raw, doc, lineCounter, file)));
  }
  return {
    config: result.data,
    file,
    baseDir: dirname(resolve(file)),
    problemAt: (path, message) => ({ file, line: lineOf(doc, lineCounter, path), path: formatPath(path), message }),
  };
}

export function readConfigFile(file: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ file, path: '', message: `cannot read: ${(err as Error).message}` }]);
  }
  return parseConfig(text, file);
}

function locateIssue(issue: z.core.$ZodIssue, raw: unknown, doc: Document, lc: LineCounter, file: string): ConfigProblem {
  let path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  // Unknown keys are reported on the object; point at the key itself.
  if (issue.code === 'unrecognized_keys' && issue.keys.length > 0) {
    path = [...path, issue.keys[0]!];
  }
  return {
    file,
    line: lineOf(doc, lc, path),
    path: formatPath(path),
    message: describeIssue(issue, valueAt(raw, issue.path), issue.code === 'unrecognized_keys' ? knownKeys(issue.path) : []),
  };
}

function yamlMessage(message: string, col: number | undefined): string {
  const first = (message.split('\n')[0] ?? message).replace(/ at line \d+, column \d+:?$/, '');
  return col !== undefined ? `${first} (column ${col})` : first;
}

/** The keys the schema allows for the object at `path` (for "did you mean"). */
function knownKeys(path: readonly PropertyKey[]): string[] {
  let schemas: unknown[] = [configSchema];
  for (const seg of [...path, undefined]) {
    const next: unknown[] = [];
    for (const s of schemas.flatMap(unwrap)) {
      const def = (s as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
      if (!def) continue;
      if (seg === undefined) {
        if (def.type === 'object') next.push(...Object.keys(def.shape as object));
      } else if (def.type === 'object') {
        const child = (def.shape as Record<PropertyKey, unknown>)[seg];
        if (child) next.push(child);
      } else if (def.type === 'record') next.push(def.valueType);
      else if (def.type === 'array') next.push(def.element);
    }
    if (seg === undefined) return next as string[];
    schemas = next;
  }
  return [];
}

/** Through the wrappers (default, optional, pipe, union) to the schemas that give a shape. */
function unwrap(s: unknown): unknown[] {
  const def = (s as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
  if (!def) return [];
  switch (def.type) {
    case 'default':
    case 'prefault':
    case 'optional':
    case 'nullable':
    case 'readonly':
      return unwrap(def.innerType);
    case 'pipe':
      return unwrap(def.in);
    case 'union':
      return (def.options as unknown[]).flatMap(unwrap);
    default:
      return [s];
  }
}

/** The known key nearest to `key` by edit distance, when it is near enough to be a typo. */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v = raw;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

function describeIssue(issue: z.core.$ZodIssue, value: unknown, known: readonly string[]): string {
  switch (issue.code) {
    case 'unrecognized_keys': {
      const text = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
      const near = issue.keys.length === 1 ? nearestKey(issue.keys[0]!, known) : undefined;
      return near ? `${text}; did you mean "${near}"?` : text;
    }
    case 'invalid_type':
      // zod does not keep the input in its issues: the value comes from the parsed YAML.
      return value === undefined ? `required: expected ${expectedText(issue.expected)}` : `expected ${expectedText(issue.expected)}, got ${describeValue(value)}`;
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${value === undefined ? 'nothing' : describeValue(value)}`;
    case 'custom':
      // Refinements carry what was expected; say what was found too.
      return value !== undefined && typeof value !== 'object' && !issue.message.startsWith('unknown') && !issue.message.startsWith('must')
        ? `${JSON.stringify(value)} is not ${issue.message}`
        : issue.message;
    default:
      return value !== undefined && typeof value !== 'object' ? `${issue.message} (got ${JSON.stringify(value)})` : issue.message;
  }
}

function expectedText(expected: string): string {
  const words: Record<string, string> = { number: 'a number', string: 'a string', boolean: 'true or false', array: 'a list', object: 'a mapping', int: 'a whole number' };
  return words[expected] ?? expected;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null (an empty value)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'number') return `the number ${v}`;
  return String(v);
}

/** Line of the deepest YAML node that exists along `path`. */
function lineOf(doc: Document, lc: LineCounter, path: (string | number)[]): number | undefined {
  for (let depth = path.length; depth >= 0; depth--) {
    const prefix = path.slice(0, depth);
    const node = depth === 0 ? doc.contents : doc.getIn(prefix, true);
    if (isNode(node) && node.range) {
      // For a mapping key, point at the key rather than at its value.
      const keyLine = depth > 0 ? keyLineOf(doc, lc, prefix) : undefined;
      return keyLine ?? lc.linePos(node.range[0]).line;
    }
  }
  return undefined;
}

function keyLineOf(doc: Document, lc: LineCounter, path: (string | number)[]): number | undefined {
  const parent = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1), true);
  const last = path[path.length - 1];
  if (parent && typeof parent === 'object' && 'items' in parent && Array.isArray(parent.items)) {
    for (const item of parent.items as unknown[]) {
      if (item && typeof item === 'object' && 'key' in item) {
        const key = (item as { key: unknown }).key;
        if (isNode(key) && key.range && (key as { value?: unknown }).value === last) return lc.linePos(key.range[0]).line;
      }
    }
  }
  return undefined;
}
