// The zone-transfer endpoint of one configured Response Policy Zone (`rpz:` in the config): SOA
// queries over UDP and TCP, AXFR (RFC 5936) and IXFR (RFC 1995, answered with the whole zone in
// AXFR form, which §4 allows) over TCP, REFUSED for addresses outside `allow_transfer`, and a
// NOTIFY (RFC 1996) to every `notify` secondary whenever the zone's content changes. The zone's
// records come from src/rpz/ (pure); this module is sockets and timers only.
import dgram from 'node:dgram';
import { createHash, randomInt } from 'node:crypto';
import net, { isIPv6 } from 'node:net';
import type { RpzZoneConfig } from '../config/schema.js';
import { parseUpstreamAddress } from '../config/schema.js';
import { CLASS_IN, RCODE, TYPE } from '../dns/codes.js';
import { readName } from '../dns/answer-bytes.js';
import { encodeName, skipName } from '../dns/wire.js';
import type { Logger } from '../logging/logger.js';
import { NetworkTable } from '../match/network-table.js';
import { TsigSigner, verifyRequest, type TsigKey } from '../dns/tsig.js';
import { encodeResourceRecord, nextSerial, normaliseOrigin, soaRecord, zoneDigestInput, zoneRecords, type ZoneRules } from '../rpz/zone.js';

const OPCODE_NOTIFY = 4;
const RCODE_NOTAUTH = 9;
/** A transfer's messages are cut at about this size (TCP allows 65535). */
const MESSAGE_TARGET = 16_000;
const NOTIFY_TRIES = 5;
const NOTIFY_RETRY_MS = 1000;
const TCP_IDLE_MS = 30_000;

interface Question {
  id: number;
  flags: number;
  name: string;
  type: number;
  qclass: number;
  questionEnd: number;
  /** IXFR: the serial the client has (its authority SOA), if sent. */
  clientSerial?: number;
}

function readQuestion(msg: Buffer): Question | undefined {
  if (msg.length < 12) return undefined;
  const flags = msg.readUInt16BE(2);
  if (msg.readUInt16BE(4) !== 1) return undefined;
  const name = readName(msg, 12);
  const end = skipName(msg, 12);
  if (name === undefined || end < 0 || end + 4 > msg.length) return undefined;
  const out: Question = { id: msg.readUInt16BE(0), flags, name, type: msg.readUInt16BE(end), qclass: msg.readUInt16BE(end + 2), questionEnd: end + 4 };
  if (out.type === TYPE.IXFR && msg.readUInt16BE(8) > 0) {
    // the first authority record: the client's SOA
    const n = skipName(msg, out.questionEnd);
    if (n > 0 && n + 10 <= msg.length && msg.readUInt16BE(n) === TYPE.SOA) {
      const mname = skipName(msg, n + 10);
      const rname = mname > 0 ? skipName(msg, mname) : -1;
      if (rname > 0 && rname + 4 <= msg.length) out.clientSerial = msg.readUInt32BE(rname);
    }
  }
  return out;
}

function header(q: Question, rcode: number, counts: [number, number, number, number]): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(q.id, 0);
  const opcode = (q.flags >> 11) & 0xf;
  // QR, the query's opcode and RD, AA when we answer for the zone
  h.writeUInt16BE(0x8000 | (opcode << 11) | (q.flags & 0x0100) | (rcode === RCODE.NOERROR ? 0x0400 : 0) | rcode, 2);
  counts.forEach((c, i) => h.writeUInt16BE(c, 4 + 2 * i));
  return h;
}

function questionBytes(msg: Buffer, q: Question): Buffer {
  return msg.subarray(12, q.questionEnd);
}

interface Zone {
  serial: number;
  digest: string;
  records: Buffer[];
  soa: Buffer;
}

export class RpzServer {
  readonly origin: string;
  private readonly key: TsigKey | undefined;
  private readonly acl: NetworkTable<true>;
  private udp: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private zone: Zone | undefined;
  private readonly pendingNotify = new Map<number, { timer: NodeJS.Timeout }>();
  /** Counters for tests and logs. */
  readonly stats = { transfers: 0, refused: 0, notifiesSent: 0, notifiesAcked: 0 };
  port = 0;

  constructor(
    private readonly config: RpzZoneConfig,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
  ) {
    this.origin = normaliseOrigin(config.name);
    this.acl = new NetworkTable(config.allow_transfer.map((cidr) => ({ cidr, network: true as const })));
    const t = config.tsig;
    if (t) {
      const secret = t.secret ?? process.env[t.secret_env!];
      if (!secret) throw new Error(`rpz zone ${this.origin}: tsig.secret_env ${t.secret_env} is not set`);
      this.key = { name: t.name.toLowerCase().replace(/\.$/, ''), secret: Buffer.from(secret, 'base64') };
    }
  }

  get network(): string {
    return this.config.network;
  }

  get serial(): number | undefined {
    return this.zone?.serial;
  }

  /** Set the zone's rules; a change of content gives a new serial and a NOTIFY to the secondaries. */
  update(rules: ZoneRules): boolean {
    const block = [...rules.block];
    const passthru = [...(rules.passthru ?? [])];
    const digest = createHash('sha256').update(zoneDigestInput({ block, passthru })).digest('hex');
    if (this.zone?.digest === digest) return false;
    const serial = nextSerial(this.clock(), this.zone?.serial);
    const opts = { origin: this.origin, serial, ttl: this.config.ttl };
    const records = zoneRecords({ block, passthru }, opts).map(encodeResourceRecord);
    this.zone = { serial, digest, records, soa: encodeResourceRecord(soaRecord(opts)) };
    this.logger.info({ zone: this.origin, serial, names: records.length - 2 }, 'rpz zone updated');
    if (this.udp) this.notifyAll();
    return true;
  }

  async start(): Promise<void> {
    const a = parseUpstreamAddress(this.config.listen)!;
    const tcp = net.createServer((s) => this.onConnection(s));
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen({ host: a.host, port: a.port }, () => {
        tcp.off('error', reject);
        resolve();
      });
    });
    this.tcp = tcp;
    this.port = (tcp.address() as net.AddressInfo).port;
    const udp = dgram.createSocket(isIPv6(a.host) ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(this.port, a.host, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    udp.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo));
    udp.on('error', (err) => this.logger.warn({ zone: this.origin, err: err.message }, 'rpz UDP socket error'));
    this.udp = udp;
    this.logger.info({ zone: this.origin, address: a.host, port: this.port, network: this.config.network }, 'rpz zone transfer endpoint listening');
    if (this.zone) this.notifyAll();
  }

  async stop(): Promise<void> {
    for (const p of this.pendingNotify.values()) clearTimeout(p.timer);
    this.pendingNotify.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.tcp ? this.tcp.close(() => r()) : r()));
    await new Promise<void>((r) => (this.udp ? this.udp.close(() => r()) : r()));
    this.tcp = undefined;
    this.udp = undefined;
  }

  private allowed(address: string): boolean {
    return this.acl.lookup(address.startsWith('::ffff:') ? address.slice(7) : address) === true;
  }

  /**
   * The answers to one query, signed when it was (TSIG). With a key, a transfer must be signed
   * with it; a signature that does not verify gets NOTAUTH.
   */
  private answer(msg: Buffer, from: string, tcp: boolean): Buffer[] {
    // the address list first: an address outside it learns nothing, not even that a key is wanted
    if (!this.key || !this.allowed(from)) return this.unsignedAnswer(msg, from, tcp);
    const q = readQuestion(msg);
    if (!q || q.flags & 0x8000) return [];
    const check = verifyRequest(msg, this.key, this.clock());
    const transfer = q.type === TYPE.AXFR || q.type === TYPE.IXFR;
    if (!check.ok && (check.reason !== 'unsigned' || transfer)) {
      this.stats.refused++;
      this.logger.info({ zone: this.origin, client: from, reason: check.reason }, 'rpz query refused: TSIG');
      return [Buffer.concat([header(q, check.reason === 'unsigned' ? RCODE.REFUSED : RCODE_NOTAUTH, [1, 0, 0, 0]), questionBytes(msg, q)])];
    }
    const answers = this.unsignedAnswer(msg, from, tcp);
    if (!check.ok) return answers;
    const signer = new TsigSigner(this.key, check.mac, this.clock);
    return answers.map((a) => signer.sign(a));
  }

  private unsignedAnswer(msg: Buffer, from: string, tcp: boolean): Buffer[] {
    const q = readQuestion(msg);
    if (!q) return [];
    if (q.flags & 0x8000) return [];
    const qb = questionBytes(msg, q);
    const opcode = (q.flags >> 11) & 0xf;
    const refuse = (rcode: number = RCODE.REFUSED) => [Buffer.concat([header(q, rcode, [1, 0, 0, 0]), qb])];
    if (!this.allowed(from)) {
      this.stats.refused++;
      this.logger.info({ zone: this.origin, client: from, type: q.type }, 'rpz query refused: not in allow_transfer');
      return refuse();
    }
    if (opcode !== 0) return refuse(RCODE.NOTIMP);
    const zone = this.zone;
    if (q.name !== this.origin || q.qclass !== CLASS_IN || !zone) return refuse();
    if (q.type === TYPE.SOA || (q.type === TYPE.IXFR && (!tcp || q.clientSerial === zone.serial))) {
      // over UDP an IXFR gets the SOA alone, so the client retries over TCP (RFC 1995 §2)
      return [Buffer.concat([header(q, RCODE.NOERROR, [1, 1, 0, 0]), qb, zone.soa])];
    }
    if (q.type !== TYPE.AXFR && q.type !== TYPE.IXFR) return [Buffer.concat([header(q, RCODE.NOERROR, [1, 0, 1, 0]), qb, zone.soa])];
    if (!tcp) return refuse();
    this.stats.transfers++;
    this.logger.info({ zone: this.origin, client: from, type: q.type === TYPE.AXFR ? 'AXFR' : 'IXFR', serial: zone.serial }, 'rpz zone transfer');
    const all = [...zone.records, zone.soa];
    const out: Buffer[] = [];
    let batch: Buffer[] = [];
    let size = 12 + qb.length;
    const flush = () => {
      out.push(Buffer.concat([header(q, RCODE.NOERROR, [1, batch.length, 0, 0]), qb, ...batch]));
      batch = [];
      size = 12 + qb.length;
    };
    for (const r of all) {
      if (batch.length > 0 && (size + r.length > MESSAGE_TARGET || batch.length >= 65535)) flush();
      batch.push(r);
      size += r.length;
    }
    flush();
    return out;
  }

  private onDatagram(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (msg.length >= 12 && msg[2]! & 0x80) {
      // a response: a secondary acknowledging our NOTIFY
      const id = msg.readUInt16BE(0);
      const p = this.pendingNotify.get(id);
      if (p && ((msg[2]! >> 3) & 0xf) === OPCODE_NOTIFY) {
        clearTimeout(p.timer);
        this.pendingNotify.delete(id);
        this.stats.notifiesAcked++;
      }
      return;
    }
    for (const a of this.answer(msg, rinfo.address, false)) this.udp?.send(a, rinfo.port, rinfo.address);
  }

  private onConnection(sock: net.Socket): void {
    this.sockets.add(sock);
    sock.setTimeout(TCP_IDLE_MS, () => sock.destroy());
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    let buf: Buffer = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        for (const a of this.answer(Buffer.from(msg), sock.remoteAddress ?? '', true)) {
          const framed = Buffer.alloc(2 + a.length);
          framed.writeUInt16BE(a.length, 0);
          a.copy(framed, 2);
          sock.write(framed);
        }
      }
    });
  }

  /** NOTIFY every secondary, retried until it answers (RFC 1996 §3.6). */
  private notifyAll(): void {
    const zone = this.zone;
    if (!zone) return;
    for (const target of this.config.notify) {
      const a = parseUpstreamAddress(target)!;
      let id = randomInt(0, 65536);
      while (this.pendingNotify.has(id)) id = (id + 1) & 0xffff;
      const h = Buffer.alloc(12);
      h.writeUInt16BE(id, 0);
      h.writeUInt16BE((OPCODE_NOTIFY << 11) | 0x0400, 2);
      h.writeUInt16BE(1, 4);
      h.writeUInt16BE(1, 6);
      const q = Buffer.alloc(4);
      q.writeUInt16BE(TYPE.SOA, 0);
      q.writeUInt16BE(CLASS_IN, 2);
      const msg = Buffer.concat([h, encodeName(this.origin), q, zone.soa]);
      let tries = 0;
      const send = () => {
        if (!this.udp || tries++ >= NOTIFY_TRIES) {
          this.pendingNotify.delete(id);
          if (tries > NOTIFY_TRIES) this.logger.warn({ zone: this.origin, secondary: target }, 'rpz NOTIFY not acknowledged');
          return;
        }
        this.stats.notifiesSent++;
        this.udp.send(msg, a.port, a.host);
        const p = this.pendingNotify.get(id);
        const timer = setTimeout(send, NOTIFY_RETRY_MS);
        timer.unref();
        if (p) p.timer = timer;
        else this.pendingNotify.set(id, { timer });
      };
      send();
    }
  }
}
