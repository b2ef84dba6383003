// A throw-away certificate authority for the DoT/DoH tests, made with Debian's openssl in a
// temporary directory: one CA, and server certificates it signs for the names and addresses a
// test needs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCa {
  dir: string;
  /** The CA certificate (PEM), for `ca_file` or a client's trust. */
  caFile: string;
  /** A server certificate signed by the CA for `san` (e.g. "DNS:dns.test,IP:127.0.0.1"). */
  issue(name: string, san: string): { keyFile: string; certFile: string; key: Buffer; cert: Buffer };
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function makeTestCa(prefix = 'sluice-test-ca-'): TestCa {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl(
    'req',
    '-x509',
    ...EC,
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-subj',
    '/CN=sluice test CA',
    '-days',
    '2',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign',
  );
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    issue(name, san) {
      ssl('req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
      writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
      ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
      const keyFile = join(dir, `${name}.key`);
      const certFile = join(dir, `${name}.pem`);
      return { keyFile, certFile, key: readFileSync(keyFile), cert: readFileSync(certFile) };
    },
  };
}
