// A listener that cannot bind names itself and says why in words ("cannot listen on
// 127.0.0.1:53/udp: address in use"): node's own messages ("bind EADDRINUSE", or the native
// socket's "bind: Address already in use") do not always say which address, or which protocol.
import { isIPv6 } from 'node:net';

const REASONS: Record<string, string> = {
  EADDRINUSE: 'address in use',
  EACCES: 'permission denied (a port below 1024 needs CAP_NET_BIND_SERVICE)',
  EPERM: 'permission denied',
  EADDRNOTAVAIL: 'not an address of this machine',
  EAFNOSUPPORT: 'address family not supported',
};

export class ListenError extends Error {
  /** The errno code (EADDRINUSE, …), kept so callers can still tell causes apart. */
  readonly code: string | undefined;

  constructor(message: string, code: string | undefined) {
    super(message);
    this.name = 'ListenError';
    this.code = code;
  }
}

export function hostPort(address: string, port: number): string {
  return isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
}

/** `err` from binding `address:port/protocol` (`what`: which listener, when not a DNS one). */
export function listenError(err: unknown, address: string, port: number, protocol: 'udp' | 'tcp' | 'dot' | 'doh', what?: string): ListenError {
  if (err instanceof ListenError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const reason = (code && REASONS[code]) ?? (err as Error | undefined)?.message ?? String(err);
  return new ListenError(`cannot listen on ${hostPort(address, port)}/${protocol}${what ? ` (${what})` : ''}: ${reason}`, code);
}
