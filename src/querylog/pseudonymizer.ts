// Keyed pseudonyms for client addresses: HMAC-SHA256 with a secret key, so the same device gets
// the same token in every event (reports still work) but the address cannot be recovered without
// the key. Memoised per address because an HMAC per query would be the most expensive thing on the
// logging path.
import { createHmac } from 'node:crypto';

const MEMO_MAX = 65536;

export class Pseudonymizer {
  private readonly memo = new Map<string, string>();

  constructor(private readonly key: Buffer) {}

  token(address: string): string {
    let t = this.memo.get(address);
    if (t === undefined) {
      t = 'p:' + createHmac('sha256', this.key).update(address).digest('hex').slice(0, 16);
      if (this.memo.size >= MEMO_MAX) this.memo.clear();
      this.memo.set(address, t);
    }
    return t;
  }
}
