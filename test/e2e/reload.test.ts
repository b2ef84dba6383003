// Reload: a good edit takes effect, a broken one is refused and the old state keeps serving.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RCODE, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';

let upstream: FakeUpstream;
let h: Harness;
beforeAll(async () => {
  upstream = await startFakeUpstream();
  h = await startSluice({ config: referenceConfig(), lists: referenceLists, upstream: upstream.address });
});
afterAll(async () => {
  await h?.stop();
  await upstream?.close();
});

const internal = (name: string) => resolve(h.udp, name, 'A', { localAddress: '127.0.0.1' });

describe('reload', () => {
  it('applies a list edit', async () => {
    expect((await internal('temu.com')).rcode).toBe(RCODE.NOERROR);
    h.writeList('tiktok', referenceLists.tiktok + 'temu.com\n');
    expect(await h.server.reload()).toBe(true);
    expect((await internal('temu.com')).rcode).toBe(RCODE.NXDOMAIN);
  });

  it('rejects a broken config and keeps serving the previous one', async () => {
    h.writeConfig(referenceConfig().replace('profile: staff', 'profile: nosuchprofile'));
    expect(await h.server.reload()).toBe(false);
    expect((await internal('www.tiktok.com')).rcode).toBe(RCODE.NXDOMAIN);
    expect((await internal('temu.com')).rcode).toBe(RCODE.NXDOMAIN);
    expect((await resolve(h.udp, 'www.tiktok.com', 'A', { localAddress: '127.0.0.2' })).rcode).toBe(RCODE.NOERROR);
  });

  it('rejects a config naming a missing list file', async () => {
    h.writeConfig(referenceConfig().replace('lists/wechat.txt', 'lists/missing.txt'));
    expect(await h.server.reload()).toBe(false);
    expect((await internal('wechat.com')).rcode).toBe(RCODE.NXDOMAIN);
  });

  it('applies a good config after a broken one', async () => {
    h.writeConfig(referenceConfig().replace('block: [tiktok, wechat]', 'block: [wechat]'));
    expect(await h.server.reload()).toBe(true);
    expect((await internal('www.tiktok.com')).rcode).toBe(RCODE.NOERROR);
  });
});
