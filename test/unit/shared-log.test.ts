import { describe, expect, it } from 'vitest';
import { redisSchema } from '../../src/config/schema.js';
import { editsBehind, judgeInstances, referenceRules, type Heartbeat } from '../../src/shared/instance-health.js';
import { classifyRedisError, connectionOptions, describeRedisError } from '../../src/shared/redis-connection.js';
import { extendLog, foldLog, NO_EDITS, parseSnapshot, type EditEntry } from '../../src/rules/edits.js';

const edit = (id: string, version: number, op: 'add' | 'remove', rules: string[], time = version * 1000, list = 'tiktok'): EditEntry => ({ id, version, list, op, rules, time });

describe('the shared edit log', () => {
  it('folds in version order: a later remove wins over an earlier add, whatever order the entries came in', () => {
    const s = foldLog('e1', [edit('b', 2, 'remove', ['x.com']), edit('a', 1, 'add', ['x.com', 'y.com'])]);
    expect(s.version).toBe(2);
    expect(s.lists.tiktok).toEqual({ add: ['y.com'], remove: ['x.com'] });
  });

  it('extends a log only with the entries that continue it, without a gap, in the same epoch', () => {
    const held = foldLog('e1', [edit('a', 1, 'add', ['x.com'])]);
    expect(extendLog(held, 'e1', [])).toBe(held);
    expect(extendLog(held, 'e1', [edit('b', 2, 'add', ['y.com'])])?.lists.tiktok?.add).toEqual(['x.com', 'y.com']);
    expect(extendLog(held, 'e1', [edit('c', 3, 'add', ['z.com'])])).toBeUndefined();
    expect(extendLog(held, 'e2', [edit('b', 2, 'add', ['y.com'])])).toBeUndefined();
  });

  it('reads the old snapshot format (folded lists only) as edits it keeps', () => {
    const s = parseSnapshot(JSON.stringify({ version: 7, lists: { tiktok: { add: ['a.com'], remove: ['b.com'] } } }));
    expect(s.lists.tiktok).toEqual({ add: ['a.com'], remove: ['b.com'] });
    expect(s.log.length).toBe(2);
    const round = parseSnapshot(JSON.stringify({ epoch: s.epoch, log: s.log }));
    expect(round.lists).toEqual(s.lists);
    expect(NO_EDITS.version).toBe(0);
  });
});

const beat = (instance: string, rulesVersion: string, o: Partial<Heartbeat> = {}): Heartbeat => ({
  instance,
  host: 'h',
  pid: 1,
  time: 10_000,
  version: `${rulesVersion}+e`,
  rulesVersion,
  rulesSince: 0,
  epoch: 'e1',
  editsVersion: 5,
  ...o,
});

describe('judging instances', () => {
  const head = { epoch: 'e1', version: 5 };

  it('blames only the instance whose files differ from the majority', () => {
    const st = judgeInstances([beat('a', 'R'), beat('b', 'R'), beat('c', 'X')], head, 10_500, 5000);
    expect(st.map((s) => `${s.instance}:${s.state}`)).toEqual(['a:ok', 'b:ok', 'c:diverged']);
  });

  it('in a tie, blames the instance whose files changed last, not its peer', () => {
    expect(referenceRules([beat('old', 'R', { rulesSince: 100 }), beat('new', 'X', { rulesSince: 900 })])).toBe('R');
    const st = judgeInstances([beat('new', 'X', { rulesSince: 900 }), beat('old', 'R', { rulesSince: 100 })], head, 10_500, 5000);
    expect(st.map((s) => `${s.instance}:${s.state}`)).toEqual(['new:diverged', 'old:ok']);
  });

  it('counts the workers of one instance as one vote', () => {
    const st = judgeInstances([beat('w', 'X', { worker: 1 }), beat('w', 'X', { worker: 2 }), beat('w', 'X', { worker: 3 }), beat('a', 'R'), beat('b', 'R')], head, 10_500, 5000);
    expect(st.filter((s) => s.state === 'diverged').map((s) => `${s.instance}#${s.worker}`)).toEqual(['w#1', 'w#2', 'w#3']);
  });

  it('is behind when it lacks edits of Redis’s log, or holds another epoch; stale when its heartbeat stopped', () => {
    const st = judgeInstances([beat('a', 'R'), beat('b', 'R', { editsVersion: 3 }), beat('c', 'R', { epoch: 'e0' }), beat('d', 'R', { time: 1000 })], head, 10_500, 5000);
    expect(st.map((s) => `${s.instance}:${s.state}`)).toEqual(['a:ok', 'b:behind', 'c:behind', 'd:stale']);
    expect(st[1]!.detail).toMatch(/2 edit\(s\) behind/);
    expect(editsBehind({ epoch: '', editsVersion: 0 }, { epoch: '', version: 0 })).toBe(0);
  });
});

describe('redis connection options', () => {
  it('an ACL user in the URL keeps the password from password_env (the URL has none)', () => {
    process.env.SLUICE_UNIT_PW = 'from-env';
    const o = connectionOptions(redisSchema.parse({ url: 'redis://sluice@10.0.0.20:6380/2', password_env: 'SLUICE_UNIT_PW' }));
    expect(o).toMatchObject({ host: '10.0.0.20', port: 6380, db: 2, username: 'sluice', password: 'from-env' });
    expect(o.tls).toBeUndefined();
    expect(connectionOptions(redisSchema.parse({ url: 'rediss://[::1]:6379' })).tls).toEqual({});
  });

  it('refuses a Cluster key prefix without a hash tag', () => {
    const r = redisSchema.safeParse({ cluster: { nodes: [{ host: '10.0.0.1', port: 7000 }] }, key_prefix: 'sluice:' });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toMatch(/hash tag/);
    expect(redisSchema.safeParse({ cluster: { nodes: [{ host: '10.0.0.1', port: 7000 }] }, key_prefix: '{sluice}:' }).success).toBe(true);
  });

  it('says what an error means: credentials, TLS, or a server not there', () => {
    expect(classifyRedisError(new Error('WRONGPASS invalid username-password pair or user is disabled.')).kind).toBe('auth');
    expect(classifyRedisError(Object.assign(new Error('unable to verify the first certificate'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' })).kind).toBe('tls');
    expect(classifyRedisError(new Error('connect ECONNREFUSED 127.0.0.1:6379')).kind).toBe('connection');
    const cfg = redisSchema.parse({ url: 'redis://user:secret@10.0.0.20:6379' });
    const said = describeRedisError(new Error('connect ECONNREFUSED 10.0.0.20:6379'), cfg);
    expect(said).toBe('redis at redis://10.0.0.20:6379 refused the connection (is it running?)');
    expect(said).not.toContain('secret');
  });
});
