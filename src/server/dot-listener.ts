// DNS over TLS (RFC 7858): the RFC 7766 stream of TcpListener inside TLS, ALPN "dot" (RFC 7858
// §3.1 asks for it; a client that offers no ALPN is served too, as most do). The certificate comes
// from a TlsCertificate, which replaces it on the running server.
import net from 'node:net';
import tls from 'node:tls';
import type { ListenerHooks, MessageHandler } from './udp.js';
import { TcpListener, type TcpLimits } from './tcp.js';
import type { TlsCertificate } from './tls-certificate.js';

export function createDotListener(
  address: string,
  port: number,
  listenerNetwork: string | undefined,
  handler: () => MessageHandler,
  hooks: ListenerHooks,
  limits: () => TcpLimits,
  certificate: TlsCertificate,
): TcpListener {
  return new TcpListener(address, port, listenerNetwork, handler, hooks, limits, {
    transport: 'dot',
    create(onSocket: (sock: net.Socket) => void): net.Server {
      const server = tls.createServer(
        {
          ...certificate.options,
          ALPNProtocols: ['dot'],
          // A connection that never completes its handshake is idle too.
          handshakeTimeout: limits().idleTimeoutMs,
        },
        onSocket,
      );
      // Failed handshakes (scanners, wrong CA on the client) are the client's problem: not logged as errors.
      server.on('tlsClientError', (_err, sock) => sock.destroy());
      certificate.attach(server);
      return server;
    },
  });
}
