// A DNS response as text, for people: the answer and authority records (name, type, TTL, data in
// zone-file presentation form) and the Extended DNS Error of its OPT record. For `sluice query`,
// never the query path: it allocates freely and decodes every record once.
import { CLASS_IN, EDNS_OPTION_EDE, EDNS_UDP_SIZE, TYPE, typeName } from './codes.js';
import { readName } from './answer-bytes.js';
import { encodeName, encodeOpt, skipName } from './wire.js';

/** A recursive query for `name` (lower case, no trailing dot) and `type`, with EDNS so the answer can carry an EDE. */
export function encodeQueryMessage(id: number, name: string, type: number): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD, as a stub resolver sends it
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(1, 10);
  const question = Buffer.alloc(4);
  question.writeUInt16BE(type, 0);
  question.writeUInt16BE(CLASS_IN, 2);
  return Buffer.concat([header, encodeName(name), question, encodeOpt({ udpSize: EDNS_UDP_SIZE, do: false, version: 0 })]);
}

export interface RecordText {
  name: string;
  type: string;
  ttl: number;
  data: string;
}

export interface MessageText {
  answers: RecordText[];
  authority: RecordText[];
  ede: { code: number; text: string } | undefined;
}

/** The records of `msg`; undefined when it is too short or malformed to read. */
export function messageText(msg: Buffer): MessageText | undefined {
  if (msg.length < 12) return undefined;
  const counts = [msg.readUInt16BE(4), msg.readUInt16BE(6), msg.readUInt16BE(8), msg.readUInt16BE(10)] as const;
  let p = 12;
  for (let i = 0; i < counts[0]; i++) {
    p = skipName(msg, p);
    if (p < 0) return undefined;
    p += 4;
  }
  const out: MessageText = { answers: [], authority: [], ede: undefined };
  for (let section = 1; section <= 3; section++) {
    for (let i = 0; i < counts[section]!; i++) {
      const nameEnd = skipName(msg, p);
      if (nameEnd < 0 || nameEnd + 10 > msg.length) return undefined;
      const type = msg.readUInt16BE(nameEnd);
      const ttl = msg.readUInt32BE(nameEnd + 4);
      const rdStart = nameEnd + 10;
      const rdEnd = rdStart + msg.readUInt16BE(nameEnd + 8);
      if (rdEnd > msg.length) return undefined;
      if (type === TYPE.OPT) out.ede ??= edeOf(msg, rdStart, rdEnd);
      else if (section < 3) {
        const record = { name: readName(msg, p) ?? '?', type: typeName(type), ttl, data: rdataText(msg, type, rdStart, rdEnd) };
        (section === 1 ? out.answers : out.authority).push(record);
      }
      p = rdEnd;
    }
  }
  return out;
}

function edeOf(msg: Buffer, start: number, end: number): { code: number; text: string } | undefined {
  for (let o = start; o + 4 <= end;) {
    const code = msg.readUInt16BE(o);
    const len = msg.readUInt16BE(o + 2);
    if (code === EDNS_OPTION_EDE && len >= 2 && o + 4 + len <= end) return { code: msg.readUInt16BE(o + 4), text: msg.toString('utf8', o + 6, o + 4 + len) };
    o += 4 + len;
  }
  return undefined;
}

const dotted = (name: string | undefined): string => (name === undefined ? '?' : `${name}.`);

/** Presentation form (RFC 1035 §5.1) of the common types; RFC 3597's `\# length hex` for the rest. */
function rdataText(msg: Buffer, type: number, start: number, end: number): string {
  const len = end - start;
  switch (type) {
    case TYPE.A:
      if (len === 4) return [...msg.subarray(start, end)].join('.');
      break;
    case TYPE.AAAA:
      if (len === 16) return ipv6Text(msg.subarray(start, end));
      break;
    case TYPE.CNAME:
    case TYPE.NS:
    case TYPE.PTR:
      return dotted(readName(msg, start));
    case TYPE.MX:
      if (len >= 3) return `${msg.readUInt16BE(start)} ${dotted(readName(msg, start + 2))}`;
      break;
    case TYPE.SRV:
      if (len >= 7) return `${msg.readUInt16BE(start)} ${msg.readUInt16BE(start + 2)} ${msg.readUInt16BE(start + 4)} ${dotted(readName(msg, start + 6))}`;
      break;
    case TYPE.TXT: {
      const parts: string[] = [];
      for (let o = start; o < end; o += 1 + msg[o]!) parts.push(JSON.stringify(msg.toString('latin1', o + 1, Math.min(end, o + 1 + msg[o]!))));
      return parts.join(' ');
    }
    case TYPE.SOA: {
      const mnameEnd = skipName(msg, start);
      const rnameEnd = mnameEnd < 0 ? -1 : skipName(msg, mnameEnd);
      if (rnameEnd < 0 || rnameEnd + 20 > end) break;
      const n = [0, 4, 8, 12, 16].map((k) => msg.readUInt32BE(rnameEnd + k));
      return `${dotted(readName(msg, start))} ${dotted(readName(msg, mnameEnd))} ${n.join(' ')}`;
    }
  }
  return `\\# ${len}${len > 0 ? ` ${msg.toString('hex', start, end)}` : ''}`;
}

function ipv6Text(b: Buffer): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i));
  // RFC 5952 §4.2: the longest run of two or more zero groups becomes "::" (the first of equal runs).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}
