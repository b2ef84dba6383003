// `sluice init [DIR]`: a starter site config with comments, where an installed sluice looks for it
// (/etc/sluice), with its state in /var/lib/sluice and the catalog of the installed package. The
// shipped config/sluice.yaml is a loopback demo; this is the one a site edits into its own.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Option, type Command } from 'commander';
import { parseConfig } from '../config/load.js';
import { EXIT, fail } from './output.js';

// src/cli/ and dist/cli/ are both two levels below the package root.
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface StarterOptions {
  /** Absolute path of the catalog the config names. */
  catalog: string;
  stateDir: string;
  /** YYYY-MM-DD: the policy starts today and is due for review in six months. */
  today: string;
}

function addDays(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
}

/** The starter config's text. Pure; a test parses it with the real schema. */
export function starterConfig(o: StarterOptions): string {
  return `# sluice site config, written by \`sluice init\`; every key is in docs/configuration.md. Check an
# edit with \`sluice config validate\`; a running server applies it by itself (watch: true) or on
# \`systemctl reload sluice\`, and keeps its last good state when the file is broken.

# Where sluice answers. Port 53 needs CAP_NET_BIND_SERVICE (the systemd unit and the package give it).
listeners:
  - address: 0.0.0.0
    port: 53
    protocols: [udp, tcp]
  # Encrypted DNS for managed devices (docs/deployment.md, "Encrypted DNS"):
  # - address: 0.0.0.0
  #   protocols: [dot, doh]           # DNS over TLS on 853, DNS over HTTPS on 443
  #   tls: { cert_file: /etc/sluice/tls/sluice.pem, key_file: /etc/sluice/tls/sluice.key }

# Client networks: the longest matching prefix wins. A client in no network is REFUSED, so sluice
# is never an open resolver. Replace these ranges with your own.
networks:
  internal:
    description: Internal staff network
    cidrs: [10.0.0.0/8]
    profile: staff
  guest:
    description: Guest Wi-Fi (not covered by the ban)
    cidrs: [192.168.100.0/24]
    profile: open
    log: { level: blocked, pseudonymize: true }   # guests' browsing is not ours to keep

profiles:
  staff:
    description: Internal networks; public DNS-over-HTTPS endpoints are blocked too (doh-bypass)
    block: [local-additions]
    block_response: { mode: nxdomain, ttl: 60 }
  open:
    block: []

# The ban as a decision with a legal basis, a start and a review date. \`sluice policy status\`.
policies:
  app-ban:
    title: Ban of TikTok and other apps on work devices and the internal network
    reference: Council decision of YYYY-MM-DD (replace)
    block: [tiktok, bytedance-shared, lemon8, capcut, temu, pinduoduo, wechat, ucbrowser, camscanner, shein, turbovpn, shareit]
    networks: [internal]
    mode: dry-run                  # logs what it would block; set to enforce when reviewed
    from: ${o.today}
    review_by: ${addDays(o.today, 182)}           # six months: re-evaluate before this date
    # exceptions:
    #   - network: comms
    #     lists: [tiktok]
    #     reason: The communications team runs the official account
    #     approved_by: Head of Communications
    #     until: YYYY-MM-DD

# The curated lists of the installed release (one per app, vendor-shared, doh-bypass).
catalog: ${JSON.stringify(o.catalog)}
# The site's own lists, beside this file (\`sluice lists new NAME\`, \`sluice lists add\`).
lists:
  local-additions: { file: lists/local-additions.txt, description: Domains added by this site }

# What sluice writes: list state, the audit log, the query-log database, the admin token.
state_dir: ${JSON.stringify(o.stateDir)}

upstreams:
  default: [system]                # the nameservers of /etc/resolv.conf; or e.g. [10.0.0.53, tls://10.0.0.54]

query_log:
  store: { kind: sqlite, retention_days: 30, rollup_retention_days: 400 }

# Device names beside addresses in the log and reports (never on a network that pseudonymises):
# client_names:
#   static: { "10.20.0.15": comms-laptop-01 }
#   hosts_files: [leases.hosts]    # "10.20.0.16 hr-laptop-07" lines, e.g. a DHCP export

# The admin API, /metrics and the dashboard. Token: $SLUICE_ADMIN_TOKEN, else state_dir/admin-token.
admin:
  enabled: true
  address: 127.0.0.1
`;
}

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('Write a starter site config with comments (DIR/sluice.yaml and DIR/lists/local-additions.txt); never overwrites.')
    .argument('[dir]', 'where to write it', '/etc/sluice')
    .addOption(new Option('--state-dir <dir>', 'where the server will write its state').default('/var/lib/sluice'))
    .addHelpText('after', '\nExamples:\n  sudo sluice init\n  sluice init ./site --state-dir ./state')
    .action(async (dirArg: string, opts: { stateDir: string }) => {
      const dir = resolve(dirArg);
      const file = join(dir, 'sluice.yaml');
      if (existsSync(file)) return fail(`nothing written: ${file} exists (edit it, or give another directory)`, EXIT.FAILED);
      const text = starterConfig({ catalog: join(PACKAGE_ROOT, 'blocklists', 'catalog.yaml'), stateDir: resolve(opts.stateDir), today: new Date().toISOString().slice(0, 10) });
      parseConfig(text, file); // a starter that does not validate is a bug here, not the admin's
      await mkdir(join(dir, 'lists'), { recursive: true });
      const additions = join(dir, 'lists', 'local-additions.txt');
      if (!existsSync(additions)) await writeFile(additions, '# Domains this site blocks besides the catalog, one per line (`sluice lists add local-additions NAME --reason ...`).\n');
      // wx: a file created meanwhile is not overwritten.
      await writeFile(file, text, { flag: 'wx' });
      process.stdout.write(`wrote ${file} and ${additions}\nnext: edit the networks, then \`sluice config validate ${file}\`\n`);
    });
}
