// CSV the query log and reports write for spreadsheets: RFC 4180, and no cell a spreadsheet would
// run as a formula, whatever name a DNS client asked for.
import { describe, expect, it } from 'vitest';
import { eventsCsv } from '../../src/cli/log.js';
import { renderCsv } from '../../src/querylog/csv.js';
import type { QueryEvent } from '../../src/querylog/event.js';

const one = (name: string) => renderCsv(['name'], [[name]]).split('\r\n')[1];

describe('renderCsv', () => {
  it('starts with the header row and ends every record with CRLF', () => {
    expect(
      renderCsv(
        ['network', 'client', 'count'],
        [
          ['internal', '10.1.2.3', 4],
          ['guest', 'p:0123456789abcdef', 0],
        ],
      ),
    ).toBe('network,client,count\r\ninternal,10.1.2.3,4\r\nguest,p:0123456789abcdef,0\r\n');
    expect(renderCsv(['a', 'b'], [])).toBe('a,b\r\n');
  });

  it('writes normal values as they are: names, addresses, numbers, booleans, empty cells', () => {
    expect(
      renderCsv(
        ['name', 'upstream', 'rcode', 'ms', 'cache', 'policy', 'list'],
        [
          ['v16-webapp.tiktok.com', '[2001:db8::53]:53', 3, 0.25, true, null, undefined],
          ['x.example', '192.0.2.1:53', 0, 12, false, '', 'tiktok'],
        ],
      ),
    ).toBe('name,upstream,rcode,ms,cache,policy,list\r\n' + 'v16-webapp.tiktok.com,[2001:db8::53]:53,3,0.25,true,,\r\n' + 'x.example,192.0.2.1:53,0,12,false,,tiktok\r\n');
  });

  it.each([
    ['=HYPERLINK("http://x")+tiktok.tiktok.com', `"'=HYPERLINK(""http://x"")+tiktok.tiktok.com"`],
    ['=1+2', "'=1+2"],
    ['+1+2.example', "'+1+2.example"],
    ['-2+3.example', "'-2+3.example"],
    ['@SUM(A1).example', "'@SUM(A1).example"],
    ['\t=1.example', "'\t=1.example"],
    ['\r=1.example', `"'\r=1.example"`],
    ['\uFF1D1.example', "'\uFF1D1.example"],
  ])('escapes %j so no spreadsheet runs it as a formula', (name, cell) => {
    expect(one(name)).toBe(cell);
  });

  it('escapes a leading - in text but leaves negative numbers as numbers', () => {
    expect(renderCsv(['n', 's'], [[-1, '-1']])).toBe("n,s\r\n-1,'-1\r\n");
  });

  it('leaves formula characters that are not first alone', () => {
    expect(one('a=b+c-d@e.example')).toBe('a=b+c-d@e.example');
  });

  it.each([
    ['a,b', '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ['two\nlines', '"two\nlines"'],
    ['cr\ronly', '"cr\ronly"'],
    ['crlf\r\nend', '"crlf\r\nend"'],
    ['trailing\r', '"trailing\r"'],
  ])('quotes %j', (value, cell) => {
    expect(renderCsv(['v'], [[value]])).toBe(`v\r\n${cell}\r\n`);
  });

  it('round-trips ordinary values through an RFC 4180 reader', () => {
    const rows = [
      ['www.tiktok.com', 'internal', '127.0.0.1', 'blocked', 'app-ban', 'tiktok', 'tiktok.com'],
      ['a,b.example', 'say "x"', 'line\nbreak', '', 'p:00ff', '_dmarc.example.org', 'xn--bcher-kva.example'],
    ];
    const headers = ['name', 'network', 'client', 'decision', 'policy', 'list', 'rule'];
    expect(parseCsv(renderCsv(headers, rows))).toEqual([headers, ...rows]);
  });

  it('keeps eventsCsv: one header, one row per event, and no header when asked', () => {
    const e: QueryEvent = {
      time: Date.parse('2026-12-01T12:00:00Z'),
      instance: 'sluice',
      network: 'internal',
      client: '127.0.0.1',
      type: 'A',
      name: '=cmd|" /c calc"!a0.tiktok.com',
      decision: 'blocked',
      wouldBlock: false,
      exception: false,
      profile: 'staff',
      policy: 'app-ban',
      list: 'tiktok',
      rule: 'tiktok.com',
      cache: false,
      upstream: null,
      rcode: 3,
      answers: 0,
      durationMs: 0.1,
      transport: 'udp',
    };
    const text = eventsCsv([e]);
    const lines = text.split('\r\n');
    expect(lines[0]).toBe('time,instance,network,client,type,name,decision,wouldBlock,exception,profile,policy,list,rule,cache,upstream,rcode,answers,durationMs,transport');
    expect(lines[1]).toBe(`2026-12-01T12:00:00.000Z,sluice,internal,127.0.0.1,A,"'=cmd|"" /c calc""!a0.tiktok.com",blocked,false,false,staff,app-ban,tiktok,tiktok.com,false,,3,0,0.1,udp`);
    expect(lines).toHaveLength(3);
    expect(eventsCsv([e], false)).toBe(`${lines[1]}\r\n`);
  });
});

/** A strict RFC 4180 reader (CRLF records), enough to check what renderCsv writes. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c !== '"') cell += c;
      else if (text[i + 1] === '"') {
        cell += '"';
        i++;
      } else quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i++;
    } else cell += c;
  }
  return rows;
}
