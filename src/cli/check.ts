// `sluice check DOMAIN`: the decision the running config makes for a name, and why — network,
// profile, list, the exact rule with its file and line, or the allow entry that let it through.
import { DENY_LIST, disabledText } from '../policy/overrides.js';
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { isIP } from 'node:net';
import { Command, Option } from 'commander';
import { typeName, TYPE } from '../dns/codes.js';
import { normaliseDomain, parseList } from '../lists/formats.js';
import type { Decision, ExceptionRef, Network, PolicyRef, WouldBlock } from '../policy/policy-engine.js';
import type { LoadedRules } from '../rules/load.js';
import { effectiveRules } from '../rules/effective.js';
import type { RuntimeEdits } from '../rules/edits.js';
import { loadForCli } from './config-file.js';
import { sharedEditsForCli } from './shared-edits.js';
import { EXIT, fail, printJson, printTable } from './output.js';

export interface CheckResult {
  domain: string;
  type: string;
  network: string;
  via: string;
  profile: string;
  decision: 'blocked' | 'allowed' | 'refused';
  list?: string;
  rule?: string;
  ruleSource?: string;
  allowRule?: string;
  allowSource?: string;
  overriddenList?: string;
  policy?: PolicyRef;
  exception?: ExceptionRef;
  outsideSchedule?: PolicyRef;
  wouldBlock?: WouldBlock;
  /** A runtime override decided it: `sluice disable`, `allow` or `deny` (see `sluice overrides`). */
  override?: string;
  answer?: string;
  /** The policy version decided under (config, list files and shared edits). */
  policyVersion?: string;
}

// One answer per (list, rule): "every network" asks for the same rule once per network, and each
// answer reads and parses the list file (with 5,000 networks that took minutes).
const sources = new Map<string, string | undefined>();

function ruleSource(r: LoadedRules, list: string, rule: string, edits: RuntimeEdits): string | undefined {
  const key = `${list}\n${rule}`;
  if (!sources.has(key)) sources.set(key, findRuleSource(r, list, rule, edits));
  return sources.get(key);
}

function findRuleSource(r: LoadedRules, list: string, rule: string, edits: RuntimeEdits): string | undefined {
  const def = r.lists.resolved.lists.get(list);
  if (!def) return undefined;
  const shared = [...edits.log].reverse().find((e) => e.list === list && e.op === 'add' && e.rules.includes(rule));
  if (shared && edits.lists[list]?.add.includes(rule))
    return `shared edit ${shared.version}${shared.user ? ` by ${shared.user}` : ''}, ${new Date(shared.time).toISOString().slice(0, 16).replace('T', ' ')}`;
  const wildcard = rule.startsWith('*.');
  const domain = wildcard ? rule.slice(2) : rule;
  try {
    const hit = parseList(readFileSync(def.file, 'utf8')).entries.find((e) => e.domain === domain && e.subdomainsOnly === wildcard);
    return hit ? `${relative(process.cwd(), def.file)}:${hit.line}` : relative(process.cwd(), def.file);
  } catch {
    return def.file;
  }
}

function allowSource(r: LoadedRules, profile: string, rule: string): string | undefined {
  const allow = r.loaded.config.profiles[profile]?.allow ?? [];
  const i = allow.findIndex((a) => a.trim().toLowerCase().replace(/\.$/, '') === rule);
  if (i < 0) return undefined;
  const p = r.loaded.problemAt(['profiles', profile, 'allow', i], '');
  return `${relative(process.cwd(), p.file)}:${p.line ?? '?'} ${p.path}`;
}

function describe(r: LoadedRules, edits: RuntimeEdits, domain: string, type: number, network: Network, via: string, now: number, client?: string): CheckResult {
  const d: Decision = r.rules.engine.decide(network, domain, now, client);
  const base = { domain, type: typeName(type), network: network.name, via, profile: network.profile.name };
  if (d.kind === 'blocked') {
    const mode = d.response.mode;
    return {
      ...base,
      decision: 'blocked',
      ...(d.policy ? { policy: d.policy } : {}),
      list: d.list,
      rule: d.rule,
      ...(d.list === DENY_LIST ? { override: d.reason.replace(/^sluice: /, '') } : { ruleSource: ruleSource(r, d.list, d.rule, edits) }),
      answer: mode === 'nxdomain' ? `NXDOMAIN, TTL ${d.response.ttl}` : mode === 'refused' ? 'REFUSED' : `${mode} answer, TTL ${d.response.ttl}`,
    };
  }
  const res: CheckResult = { ...base, decision: 'allowed', answer: 'forwarded upstream (or from cache)' };
  if (d.exception) res.exception = d.exception;
  if (d.outsideSchedule) res.outsideSchedule = d.outsideSchedule;
  if (d.wouldBlock) res.wouldBlock = d.wouldBlock;
  if (d.disabled) res.override = disabledText(d.disabled).replace(/^sluice: /, '');
  if (d.allowEntry) {
    const a = d.allowEntry.by;
    res.override = `allow entry ${a.id} for ${a.scope} (${a.reason}${a.approvedBy ? `, approved by ${a.approvedBy}` : ''}${a.until !== undefined ? `, until ${new Date(a.until).toISOString()}` : ''}), beating list ${d.allowEntry.list}, rule ${d.allowEntry.rule}`;
  }
  if (d.allowRule) {
    res.allowRule = d.allowRule;
    res.allowSource = allowSource(r, network.profile.name, d.allowRule);
    res.overriddenList = d.overriddenList;
  }
  return res;
}

function why(x: CheckResult): string {
  if (x.override) return x.override;
  if (x.ruleSource) return x.ruleSource;
  if (x.allowRule) return `allow ${x.allowRule} (${x.allowSource ?? 'config'})`;
  if (x.exception) return `exception: ${x.exception.reason}`;
  if (x.outsideSchedule) return `outside schedule of ${x.outsideSchedule.id}`;
  if (x.wouldBlock) return `dry-run ${x.wouldBlock.policy.id} would block`;
  return '-';
}

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description(
      'Explain the decision for a domain: network, profile, list and rule (file:line), or the allow entry. Exit 0 allowed, 1 blocked, 3 refused (the client is in no network), 2 usage or config error.',
    )
    .argument('<domain>', 'the name to check')
    .option('--client <ip>', 'as asked by this client address')
    .option('--network <name>', 'as asked from this network')
    .addOption(new Option('--type <type>', 'query type').default('A'))
    .option('--at <date>', 'decide as at this date/time (e.g. 2027-05-02 or 2027-05-02T09:00:00+02:00) instead of now')
    .addOption(new Option('--json', 'machine-readable output'))
    .addHelpText(
      'after',
      '\nWithout --client or --network every network is shown.\n\nExamples:\n  sluice check www.tiktok.com --client 10.1.2.3\n  sluice check www.tiktok.com --network guest\n  sluice check v16-webapp.tiktok.com',
    )
    .action(async (domainArg: string, opts: { client?: string; network?: string; type: string; at?: string; json?: boolean }, cmd: Command) => {
      const now = opts.at === undefined ? Date.now() : Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(opts.at) ? `${opts.at}T12:00:00Z` : opts.at);
      if (Number.isNaN(now)) return fail(`--at: "${opts.at}" is not a date`, EXIT.USAGE);
      const n = normaliseDomain(domainArg);
      if ('error' in n) return fail(n.error, EXIT.USAGE);
      const typeUpper = opts.type.toUpperCase();
      const type = (TYPE as Record<string, number>)[typeUpper] ?? (/^TYPE\d+$/.test(typeUpper) ? Number(typeUpper.slice(4)) : NaN);
      if (Number.isNaN(type)) return fail(`unknown query type "${opts.type}"`, EXIT.USAGE);
      if (opts.client !== undefined && isIP(opts.client) === 0) return fail(`--client: "${opts.client}" is not an IP address`, EXIT.USAGE);
      const files = await loadForCli(cmd);
      if (!files) return;
      // Decide as the server does: the files with the shared edits on top (Redis, else the snapshot).
      const shared = await sharedEditsForCli(files);
      if (shared.note) process.stderr.write(`note: ${shared.note}\n`);
      const effective = effectiveRules(files, shared.edits);
      const r: LoadedRules = { ...files, rules: effective.rules };
      const edits = shared.edits;
      const engine = r.rules.engine;
      const results: CheckResult[] = [];
      if (opts.client !== undefined) {
        const hit = r.rules.table.explain(opts.client);
        if (!hit) {
          results.push({ domain: n.domain, type: typeUpper, network: '-', via: `${opts.client} is in no network`, profile: '-', decision: 'refused', answer: 'REFUSED (never an open resolver)' });
        } else {
          results.push(describe(r, edits, n.domain, type, hit.network, `${opts.client} in ${hit.cidr}`, now, opts.client));
        }
      } else if (opts.network !== undefined) {
        const net = engine.networks.get(opts.network);
        if (!net) return fail(`no network named "${opts.network}"; networks: ${[...engine.networks.keys()].join(', ')}`, EXIT.USAGE);
        results.push(describe(r, edits, n.domain, type, net, '--network', now));
      } else {
        for (const net of engine.networks.values()) results.push(describe(r, edits, n.domain, type, net, 'every network', now));
      }
      // Blocked anywhere wins over refused: with several networks shown, a block is the news.
      process.exitCode = results.some((x) => x.decision === 'blocked') ? EXIT.FAILED : results.some((x) => x.decision === 'refused') ? EXIT.REFUSED : EXIT.OK;
      for (const x of results) x.policyVersion = effective.version;
      const versionText = `${effective.version}${shared.from === 'none' ? '' : ` (list files + ${edits.version} shared edit(s) from ${shared.from})`}`;
      if (opts.json) return printJson(results.length === 1 ? results[0] : results);
      if (results.length === 1) {
        const x = results[0]!;
        process.stdout.write(`${x.domain} ${x.type}: ${x.decision.toUpperCase()}\n`);
        const rows: [string, string | undefined][] = [
          ['network', x.network === '-' ? x.via : `${x.network} (${x.via})`],
          ['profile', x.profile],
          ['policy', x.policy && `${x.policy.id}: ${x.policy.title} (${x.policy.reference})`],
          ['list', x.list],
          ['rule', x.rule && `${x.rule}${x.ruleSource ? `  (${x.ruleSource})` : ''}`],
          ['allowed by', x.allowRule && `${x.allowRule}${x.allowSource ? `  (${x.allowSource})` : ''}, overriding list ${x.overriddenList}`],
          [
            'exception',
            x.exception &&
              `${x.exception.scope} excepted from policy ${x.exception.policy}: ${x.exception.reason} (approved by ${x.exception.approvedBy}${x.exception.until ? `, until ${x.exception.until}` : ''})`,
          ],
          ['schedule', x.outsideSchedule && `policy ${x.outsideSchedule.id} is outside its schedule now`],
          ['dry run', x.wouldBlock && `policy ${x.wouldBlock.policy.id} (dry-run) would block: list ${x.wouldBlock.list}, rule ${x.wouldBlock.rule}`],
          ['override', x.override],
          ['answer', x.answer],
          ['version', versionText],
        ];
        for (const [k, v] of rows) if (v !== undefined) process.stdout.write(`  ${k.padEnd(11)}${v}\n`);
        return;
      }
      process.stdout.write(`policy version ${versionText}\n`);
      printTable(
        ['NETWORK', 'PROFILE', 'DECISION', 'POLICY', 'LIST', 'RULE', 'WHY'],
        results.map((x) => [x.network, x.profile, x.decision, x.policy?.id ?? '-', x.list ?? '-', x.rule ?? '-', why(x)]),
      );
    });
}
