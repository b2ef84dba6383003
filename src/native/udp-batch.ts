// The batched UDP socket (native/udp-batch.c, built into native/build/udp-batch.node by
// `npm install` and `npm run build`). Optional: when it is not built, or not on Linux, UDP goes
// through node:dgram and `reason` says why.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** What `open` returns: the socket handle and the memory it shares with JS (see udp-batch.c). */
export interface BatchSocket {
  readonly handle: unknown;
  readonly rx: ArrayBuffer;
  readonly rxmeta: ArrayBuffer;
  /** Absent for a socket opened without a send area. */
  readonly tx?: ArrayBuffer;
  readonly txmeta?: ArrayBuffer;
  readonly port: number;
  readonly batch: number;
  readonly rxSlot: number;
  readonly txSlot: number;
  readonly meta: number;
}

export interface BatchBinding {
  /** `batch` slots (at most 64) for datagrams; `withTx` false: no send area (answers only leave with sendTo). */
  open(family: 4 | 6, address: string, port: number, reusePort: boolean, recvBufferSize: number, onBatch: (count: number) => number, batch?: number, withTx?: boolean): BatchSocket;
  /** 0, or a negative errno. */
  sendTo(handle: unknown, buf: Uint8Array, length: number, address: string, port: number): number;
  addressText(handle: unknown, index: number): string;
  close(handle: unknown): void;
  /** The socket stops keeping the event loop alive. */
  unref(handle: unknown): void;
  /** [send errors, truncated datagrams] */
  stats(handle: unknown): [number, number];
  /** One datagram to a Unix socket (systemd's NOTIFY_SOCKET; "@" is the abstract namespace): 0, or a negative errno. */
  notify(path: string, text: string): number;
}

export type BatchBindingLoad = { binding: BatchBinding; reason?: undefined } | { binding?: undefined; reason: string };

// src/native/ and dist/native/ are both two levels below the package root.
const addonPath = fileURLToPath(new URL('../../native/build/udp-batch.node', import.meta.url));
let loaded: BatchBindingLoad | undefined;

export function loadBatchBinding(): BatchBindingLoad {
  if (loaded) return loaded;
  // SLUICE_NO_NATIVE=1: run as where the addon cannot be built (to compare, or to rule it out).
  if (process.env.SLUICE_NO_NATIVE) loaded = { reason: 'SLUICE_NO_NATIVE is set' };
  else if (process.platform !== 'linux') loaded = { reason: `recvmmsg/sendmmsg are Linux only (this is ${process.platform})` };
  else if (!existsSync(addonPath)) loaded = { reason: `${addonPath} is not built (npm run build compiles it; it needs a C compiler and Node's headers)` };
  else {
    try {
      loaded = { binding: createRequire(import.meta.url)(addonPath) as BatchBinding };
    } catch (err) {
      loaded = { reason: `cannot load ${addonPath}: ${(err as Error).message}` };
    }
  }
  return loaded;
}

/**
 * The source address of datagram `i` of a socket's current batch, as text (the form node:dgram's
 * rinfo.address has). IPv4 addresses come from the batch's shared bytes, one string per address
 * kept for reuse, so a busy client costs no string per query; IPv6 ones are asked of the addon.
 */
export class SourceAddresses {
  private readonly meta: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly ipv4 = new Map<number, string>();

  constructor(
    private readonly binding: BatchBinding,
    private readonly socket: BatchSocket,
  ) {
    this.meta = new Int32Array(socket.rxmeta);
    this.bytes = new Uint8Array(socket.rxmeta);
  }

  of(i: number): string {
    const m = i * this.socket.meta;
    if (this.meta[m + 2] !== 4) return this.binding.addressText(this.socket.handle, i);
    const key = this.meta[m + 3]!;
    let text = this.ipv4.get(key);
    if (text === undefined) {
      const b = this.bytes;
      const at = (m + 3) * 4;
      text = `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
      // Bounded: a network's clients are a few thousand; a spoofed flood only costs re-formatting.
      if (this.ipv4.size >= 65536) this.ipv4.clear();
      this.ipv4.set(key, text);
    }
    return text;
  }
}
