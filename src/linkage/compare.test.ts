import { test } from 'node:test';
import assert from 'node:assert/strict';
import nysiis from 'talisman/phonetics/nysiis.js';
import fc from 'fast-check';
import { damerauLevenshtein, derive, doubleMetaphone, jaroWinkler, jaroWinklerReference, normalise, normaliseDob, postcodeOutward } from './compare.ts';

test('Jaro-Winkler agrees with the values Winkler (1990) and the literature publish', () => {
  // Winkler's worked examples, prefix scale 0.1: MARTHA/MARHTA 0.961, DWAYNE/DUANE 0.840, DIXON/DICKSONX 0.813.
  assert.equal(jaroWinkler('MARTHA', 'MARHTA').toFixed(3), '0.961');
  assert.equal(jaroWinkler('DWAYNE', 'DUANE').toFixed(3), '0.840');
  assert.equal(jaroWinkler('DIXON', 'DICKSONX').toFixed(3), '0.813');
  assert.equal(jaroWinkler('same', 'same'), 1);
  assert.equal(jaroWinkler('abc', 'xyz'), 0);
});

test('Damerau-Levenshtein is the optimal-string-alignment distance, with an early exit', () => {
  // The textbook case separating the two variants: OSA("CA","ABC") = 3, unrestricted DL = 2.
  assert.equal(damerauLevenshtein('CA', 'ABC'), 3);
  assert.equal(damerauLevenshtein('19560409', '19560490'), 1, 'adjacent transposition costs one');
  assert.equal(damerauLevenshtein('kitten', 'sitting'), 3);
  assert.equal(damerauLevenshtein('kitten', 'sitting', 2), Infinity, 'beyond the limit');
  assert.equal(damerauLevenshtein('abc', 'abc', 0), 0);
});

test('Double Metaphone primary codes agree with Apache Commons Codec\'s published test sentence', () => {
  // commons-codec DoubleMetaphoneTest: "The quick brown fox jumped over the lazy dogs".
  const expected: Record<string, string> = { testing: 'TSTN', The: '0', quick: 'KK', brown: 'PRN', fox: 'FKS', jumped: 'JMPT', over: 'AFR', lazy: 'LS', dogs: 'TKS' };
  for (const [word, code] of Object.entries(expected)) assert.equal(doubleMetaphone(word), code, word);
  // Philips (2000): Smith and Schmidt share a code through the alternate; the primary codes differ.
  assert.equal(doubleMetaphone('Smith'), 'SM0');
  assert.equal(doubleMetaphone('Schmidt'), 'XMT');
});

test('the NYSIIS implementation available is not used because it disagrees with published codes', () => {
  // Taft (1970) as commonly published: KNIGHT -> NAGT. talisman yields NNAGT, so blocking uses
  // Double Metaphone only (docs/linkage.md). This test fails, prompting a re-check, if it is fixed.
  assert.notEqual(nysiis('Knight'), 'NAGT');
});

test('values are normalised per kind', () => {
  assert.equal(normalise('given_name', '  José-María '), 'josemaria');
  assert.equal(normalise('surname', "O'Brien"), 'obrien');
  assert.equal(normalise('postcode', 'ls1 4ab'), 'LS14AB');
  assert.equal(normalise('email', 'Not An Email'), null);
  assert.equal(normalise('street', '14, Mill Lane'), '14 mill lane');
  assert.equal(normalise('given_name', '   '), null);
  assert.equal(normaliseDob('1956-04-09'), '19560409');
  assert.equal(normaliseDob('19560409'), '19560409');
  assert.equal(normaliseDob('9/4/1956'), '19560409');
  assert.equal(normaliseDob('19560931'), '19560931', 'an impossible day is kept for comparison');
  assert.equal(normaliseDob('April 1956'), null);
  assert.equal(postcodeOutward('LS14AB'), 'LS1');
  assert.equal(postcodeOutward('SW1A1AA'), 'SW1A');
  assert.equal(postcodeOutward('2119'), null);
});

test('blocking keys derive from normalised values', () => {
  assert.equal(derive('dob', 'year', '19560409'), '1956');
  assert.equal(derive('dob', 'monthday', '19560409'), '0409');
  assert.equal(derive('surname', 'dm', 'smith'), 'SM0');
  assert.equal(derive('surname', 'first', 'smith'), 's');
  assert.equal(derive('surname', 'prefix3', 'smith'), 'smi');
  assert.equal(derive('surname', 'prefix9', 'smith'), null, 'too short for the prefix');
  assert.equal(derive('email', 'local', 'a.b@c.org'), 'a.b');
  assert.equal(derive('postcode', 'sector', 'LS14AB'), 'LS14');
  assert.equal(derive('postcode', 'outward', 'LS14AB'), 'LS1');
  assert.equal(derive('postcode', 'sector', '2119'), null, 'not a UK postcode');
  assert.equal(derive('surname', 'dm', null), null);
  assert.throws(() => derive('surname', 'soundex', 'smith'), /unknown blocking transform/);
});

test('the allocation-free Jaro-Winkler agrees with talisman\'s on random strings', () => {
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'é', ' '), maxLength: 14 }), fc.string({ unit: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'é', ' '), maxLength: 14 }), (x, y) => {
      assert.ok(Math.abs(jaroWinkler(x, y) - jaroWinklerReference(x, y)) < 1e-12, `${x} / ${y}`);
    }),
    { numRuns: 20_000, seed: 42 },
  );
  const long = 'x'.repeat(300);
  assert.equal(jaroWinkler(long, `${long}y`).toFixed(6), jaroWinklerReference(long, `${long}y`).toFixed(6));
});
