// What a DoT/DoH upstream's certificate must show before a query is sent to it: a chain to the
// system CAs or the configured CA file, the configured name (or, for an upstream given by address,
// its IP in the certificate), and, when pins are configured, a certificate of the chain whose
// SubjectPublicKeyInfo SHA-256 is in the pin set (RFC 7858 §4.2). All of it is checked during the
// handshake (checkServerIdentity), so a refused server never sees a query.
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { EncryptedUpstream } from '../config/schema.js';

/** Why a connection to an encrypted upstream could not be made or was lost (the metric's `reason`). */
export type ConnectFailure = 'tls-name' | 'pin' | 'certificate' | 'ca-file' | 'refused' | 'timeout' | 'closed' | 'tls' | 'http' | 'network';

// A CA file is read once per path (the pool is rebuilt when the upstream config changes).
const caFiles = new Map<string, Buffer>();

function caOf(path: string): Buffer {
  let ca = caFiles.get(path);
  if (!ca) {
    try {
      ca = readFileSync(path);
    } catch (err) {
      throw Object.assign(new Error(`ca_file ${path}: ${(err as Error).message}`), { code: 'ERR_SLUICE_CA_FILE' });
    }
    caFiles.set(path, ca);
  }
  return ca;
}

/** The base64 SHA-256 of a DER certificate's SubjectPublicKeyInfo, as `spki_pins` lists them. */
export function spkiPin(der: Buffer): string {
  const spki = new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/** Whether some certificate of the peer's chain (leaf to root as the server sent and we built it) has a pinned SPKI. */
function chainHasPin(cert: tls.PeerCertificate | tls.DetailedPeerCertificate, pins: readonly string[]): boolean {
  const seen = new Set<tls.PeerCertificate>();
  let c: tls.PeerCertificate | undefined = cert;
  while (c && !seen.has(c) && c.raw) {
    if (pins.includes(spkiPin(c.raw))) return true;
    seen.add(c);
    c = (c as tls.DetailedPeerCertificate).issuerCertificate;
  }
  return false;
}

/** TLS options for `host`:`port` with the verification `e` asks for; `session` resumes an earlier one. */
export function tlsOptions(e: EncryptedUpstream, host: string, port: number, alpn: 'dot' | 'h2', session: Buffer | undefined): tls.ConnectionOptions {
  // The name checked is the configured one; without one, the address itself (an IP SAN).
  const identity = e.tlsName ?? host;
  return {
    host,
    port,
    // No SNI for an address (RFC 6066 §3 forbids literal addresses in it).
    ...(e.tlsName === undefined ? {} : { servername: e.tlsName }),
    ALPNProtocols: [alpn],
    minVersion: 'TLSv1.2',
    rejectUnauthorized: true,
    ...(e.caFile === undefined ? {} : { ca: caOf(e.caFile) }),
    ...(session ? { session } : {}),
    checkServerIdentity: (_hostname, cert) => {
      const nameError = tls.checkServerIdentity(identity, cert);
      if (nameError) return nameError;
      if (e.pins.length > 0 && !chainHasPin(cert, e.pins)) {
        return Object.assign(new Error(`no certificate of the chain matches spki_pins (leaf SPKI ${cert.raw ? spkiPin(cert.raw) : '?'})`), { code: 'ERR_SLUICE_PIN' });
      }
      return undefined;
    },
  };
}

const CERTIFICATE_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'INVALID_PURPOSE',
]);

/** The failure `err` stands for. */
export function classifyFailure(err: Error & { code?: string }): ConnectFailure {
  const code = err.code ?? '';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'tls-name';
  if (code === 'ERR_SLUICE_PIN') return 'pin';
  if (code === 'ERR_SLUICE_CA_FILE') return 'ca-file';
  if (CERTIFICATE_CODES.has(code)) return 'certificate';
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ETIMEDOUT' || code === 'ERR_SLUICE_CONNECT_TIMEOUT') return 'timeout';
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_SLUICE_CLOSED') return 'closed';
  if (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS')) return 'tls';
  if (code.startsWith('ERR_HTTP2')) return 'http';
  return 'network';
}
