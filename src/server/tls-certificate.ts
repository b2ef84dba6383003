// The certificate and key of the DoT and DoH listeners, read from PEM files and replaced without a
// restart: when either file changes on disk (watched) and on reload (SIGHUP), a new secure context
// is built and given to every server that uses it. New handshakes then present the new
// certificate; established connections keep the one they negotiated. A broken new pair (unreadable,
// not PEM, key not matching) is logged with its files and the old one stays in use.
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { Logger } from '../logging/logger.js';
import { FileWatcher } from './file-watcher.js';

/** TLS 1.2 is the floor (RFC 8310 §9, RFC 8484 §5.2: TLS 1.2 or later). */
export const TLS_MIN_VERSION = 'TLSv1.2';

export interface CertificatePair {
  cert: Buffer;
  key: Buffer;
}

/** Read and check a certificate and key; throws an Error that names the file at fault. */
export function readCertificatePair(certFile: string, keyFile: string): CertificatePair {
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`${what} ${file}: ${(err as Error).message}`, { cause: err });
    }
  };
  const pair = { cert: read(certFile, 'certificate'), key: read(keyFile, 'key') };
  try {
    // Parses both and checks that the key belongs to the certificate ("key values mismatch").
    tls.createSecureContext({ ...pair, minVersion: TLS_MIN_VERSION });
  } catch (err) {
    throw new Error(`certificate ${certFile} with key ${keyFile}: ${(err as Error).message}`, { cause: err });
  }
  return pair;
}

export class TlsCertificate {
  private pair: CertificatePair;
  private readonly servers = new Set<tls.Server>();
  private readonly watcher: FileWatcher;
  /** Times a changed certificate was put in use (for logs and tests). */
  reloads = 0;

  /** Throws (naming the file) when the pair cannot be used: at start-up that is fatal. */
  constructor(
    readonly certFile: string,
    readonly keyFile: string,
    private readonly logger: Logger,
  ) {
    this.pair = readCertificatePair(certFile, keyFile);
    // A new certificate is usually written as two files: the short debounce lets both land.
    this.watcher = new FileWatcher(
      () => this.reload(),
      200,
      (err) => logger.warn({ err: err.message, cert: certFile }, 'certificate watch problem'),
    );
    this.watcher.setFiles([certFile, keyFile]);
  }

  /** Options for tls.createServer / http2.createSecureServer: the current pair. */
  get options(): tls.SecureContextOptions {
    return { ...this.pair, minVersion: TLS_MIN_VERSION };
  }

  /** `server` gets every future certificate. */
  attach(server: tls.Server): void {
    this.servers.add(server);
    server.once('close', () => this.servers.delete(server));
  }

  /** Read the files again; when they changed and are good, new handshakes use them. False: kept the old pair. */
  reload(): boolean {
    let next: CertificatePair;
    try {
      next = readCertificatePair(this.certFile, this.keyFile);
    } catch (err) {
      this.logger.error({ cert: this.certFile, key: this.keyFile, err: (err as Error).message }, `certificate not replaced, still using the previous one: ${(err as Error).message}`);
      return false;
    }
    if (next.cert.equals(this.pair.cert) && next.key.equals(this.pair.key)) return true;
    this.pair = next;
    for (const s of this.servers) s.setSecureContext(this.options);
    this.reloads++;
    this.logger.info({ cert: this.certFile, listeners: this.servers.size }, 'certificate replaced');
    return true;
  }

  close(): void {
    this.watcher.close();
    this.servers.clear();
  }
}
