/**
 * Issue 11 §4: text from an input is cut and escaped in messages. A header of 200 MB once became
 * a 200 MB error message.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { expectError } from '../../test/support/errors.ts';
import { readTableFromString } from './csv.ts';
import { link, makeSide, parseBlockingRule } from './engine.ts';
import { clip, clipList, printable, shown, shownList, SHOWN_CHARS } from './shown.ts';
import type { Table } from './types.ts';

describe('shown', () => {
  test('quotes a short value whole and cuts a long one, saying how long it was', () => {
    assert.equal(shown('surname'), '"surname"');
    const long = 'a'.repeat(1_000_000);
    const s = shown(long);
    assert.equal(s, `"${'a'.repeat(SHOWN_CHARS)}…" (1,000,000 characters)`);
    assert.equal(clip(long).length, SHOWN_CHARS + 1);
    assert.equal(clip('short'), 'short');
  });

  test('escapes control and bidirectional-override characters, quotes and backslashes', () => {
    assert.equal(printable('a\nb\u202ec"d\\'), 'a\\u000ab\\u202ec\\"d\\\\');
    assert.equal(shown('x\u0000'), '"x\\u0000"');
  });

  test('never cuts a surrogate pair in half', () => {
    const v = `${'a'.repeat(SHOWN_CHARS - 1)}😀tail`;
    assert.ok(shown(v).startsWith(`"${'a'.repeat(SHOWN_CHARS - 1)}…"`), shown(v));
    assert.ok(!/[\ud800-\udbff]…/.test(clip(v)), 'no lone high surrogate before the ellipsis');
  });

  test('lists at most a given number of values, and says how many more', () => {
    const many = Array.from({ length: 45 }, (_, i) => `c${i}`);
    assert.match(shownList(many), /"c39" and 5 more$/);
    assert.equal(clipList(many).length, 40);
  });
});

describe('engine messages with a long column name', () => {
  const long = `name${'x'.repeat(200_000)}`;
  const table: Table = readTableFromString(`id,${long},surname\n1,Ann,Smith\n2,Bob,Jones\n`, 'long.csv', { idColumn: 'id' }).table;

  test('a column the table does not have is named cut, in the message and in detail.field', () => {
    const e = expectError(() => makeSide(table, [{ column: `${long}y`, kind: 'surname' }]), 'invalid_request');
    assert.ok(e.message.length < 2_000, `${e.message.length} characters`);
    assert.match(e.message, /has no column "namex+…" \(200,005 characters\)/);
    assert.ok(String(e.detail.field).length <= SHOWN_CHARS + 1);
    assert.ok(JSON.stringify(e.toJSON()).length < 5_000, 'the error as a client gets it is small too');
  });

  test('an unknown kind and a bad blocking rule are named cut', () => {
    const kind = expectError(() => makeSide(table, [{ column: 'surname', kind: 'k'.repeat(10_000) as 'surname' }]), 'invalid_request', 'surname');
    assert.ok(kind.message.length < 1_000, kind.message.slice(0, 200));
    const rule = expectError(() => parseBlockingRule(`${'r'.repeat(50_000)}:dm`), 'invalid_request', 'blocking');
    assert.ok(rule.message.length < 1_000 && /\(50,003 characters\)/.test(rule.message), rule.message.slice(0, 300));
  });

  test('no compared column: the columns in the detail are cut', () => {
    const odd = readTableFromString(`id,${long}\n1,a\n2,b\n`, 'odd.csv', { idColumn: 'id' }).table;
    const e = expectError(() => link(odd, null), 'invalid_request', 'columns');
    assert.ok(JSON.stringify(e.toJSON()).length < 5_000);
  });
});
