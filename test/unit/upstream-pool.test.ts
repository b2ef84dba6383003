// The pool's bookkeeping per upstream, without sockets: round-trip times (RFC 6298), back-off that
// doubles once per period, and one probe at a time.
import { describe, expect, it } from 'vitest';
import { UpstreamPool } from '../../src/upstream/upstream-pool.js';

const A = { host: '127.0.0.1', port: 5301 };
const B = { host: '127.0.0.1', port: 5302 };
const pool = () => new UpstreamPool({ sockets: 1, socketMaxQueries: 10, timeoutMs: 1000, minTimeoutMs: 50, totalTimeoutMs: 3000, backoffMs: 5000 });

describe('round-trip times', () => {
  it('starts at Unbound’s 376 ms, learns srtt + 4·rttvar, bounded by the floor and timeout_ms', () => {
    const p = pool();
    const h = p.healthOf('127.0.0.1:5301');
    expect(h.rto).toBe(376);
    p.answered(h, 10);
    expect(h.srtt).toBe(10);
    expect(h.rto).toBe(50); // 10 + 4 × 5, raised to the floor
    for (let i = 0; i < 20; i++) p.answered(h, 400);
    expect(h.srtt).toBeGreaterThan(350);
    expect(h.rto).toBeLessThanOrEqual(1000);
    p.timedOut(h);
    p.timedOut(h);
    expect(h.rto).toBe(1000);
  });
});

describe('back-off', () => {
  it('starts after two failed queries, does not grow while backed off, and doubles once per failed probe', () => {
    const p = pool();
    const h = p.healthOf('127.0.0.1:5301');
    const t = 1_000_000;
    p.failed(h, t);
    expect(h.downUntil).toBe(0);
    p.failed(h, t);
    expect(h.downUntil).toBe(t + 5000);
    for (let i = 0; i < 100; i++) p.failed(h, t + 10);
    expect(h.downUntil).toBe(t + 5000);
    expect(h.backoffMs).toBe(10_000);
    // The period is over: one query probes it; the others do not use it while B is up.
    const later = t + 6000;
    expect(p.usable([A, B], later)).toEqual([A, B]);
    expect(h.probing).toBe(true);
    expect(p.usable([A, B], later)).toEqual([B]);
    p.failed(h, later);
    expect(h.downUntil).toBe(later + 10_000);
    expect(h.backoffMs).toBe(20_000);
    p.succeeded(h);
    expect(p.usable([A, B], later)).toEqual([A, B]);
  });

  it('when every upstream is backed off, one query at a time probes one of them at once', () => {
    const p = pool();
    const h = p.healthOf('127.0.0.1:5301');
    p.failed(h, 0);
    p.failed(h, 0);
    expect(p.usable([A], 1)).toEqual([A]);
    expect(p.usable([A], 1)).toEqual([]);
    for (let i = 0; i < 10; i++) p.failed(h, 1);
    expect(h.backoffMs).toBe(20_000); // doubled by the one failed probe, not by the ten queries
  });
});
