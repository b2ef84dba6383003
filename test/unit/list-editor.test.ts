import { describe, expect, it } from 'vitest';
import { addRulesToText, normaliseRules, removeRulesFromText } from '../../src/lists/list-editor.js';

describe('removeRulesFromText', () => {
  it.each([
    ['a plain line', '# c\na.example  # why\nb.example\n', ['a.example'], '# c\nb.example\n'],
    ['one name of a hosts line', '0.0.0.0 a.example b.example  # trio\n', ['b.example'], '0.0.0.0 a.example  # trio\n'],
    ['a name written with case and trailing dot', '0.0.0.0 Two.Example. three.example\n', ['two.example'], '0.0.0.0 three.example\n'],
    ['an IDN name, given as punycode', '0.0.0.0 bücher.example other.example\n', ['xn--bcher-kva.example'], '0.0.0.0 other.example\n'],
    ['a wildcard name of a hosts line', '0.0.0.0 *.w.example w.example\n', ['*.w.example'], '0.0.0.0 w.example\n'],
    ['an adblock rule', '||ad.example^\nkeep.example\n', ['ad.example'], 'keep.example\n'],
  ])('removes %s and nothing else', (_what, text, rules, expected) => {
    const r = removeRulesFromText(text, rules);
    expect(r.text).toBe(expected);
    expect(r.removed).toEqual(rules);
    expect(r.missing).toEqual([]);
  });

  it('reports rules that are not there and leaves the text alone', () => {
    const text = '# only a comment\nkeep.example\n';
    expect(removeRulesFromText(text, ['gone.example'])).toEqual({ text, removed: [], missing: ['gone.example'] });
  });
});

describe('addRulesToText', () => {
  it('appends new rules with the comment and reports those present in any format', () => {
    const r = addRulesToText('0.0.0.0 a.example\n||b.example^', ['a.example', 'b.example', 'c.example', '*.c.example'], 'why');
    expect(r.present).toEqual(['a.example', 'b.example']);
    expect(r.added).toEqual(['c.example', '*.c.example']);
    expect(r.text).toBe('0.0.0.0 a.example\n||b.example^\nc.example  # why\n*.c.example  # why\n');
  });
});

describe('normaliseRules', () => {
  it('normalises case, trailing dots, IDN and duplicates, keeping *.', () => {
    expect(normaliseRules(['A.Example.', 'a.example', '*.Bücher.Example'])).toEqual(['a.example', '*.xn--bcher-kva.example']);
  });

  it('refuses the whole input when one name is invalid, naming each bad one', () => {
    expect(() => normaliseRules(['ok.example', 'bad..example', '1.2.3.4'])).toThrow(/"bad\.\.example".*\n.*"1\.2\.3\.4" is an IP address/);
  });
});
