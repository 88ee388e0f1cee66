/**
 * @module linkage/shown
 * Text from an input (a column name, a cell, a rule, an id) as it appears in an error or a
 * warning: quoted, with control and bidirectional-override characters escaped, and cut to a
 * bounded length. An input is anyone's file: a header of 200 MB once became a 200 MB error
 * message, and an override character can make a terminal show something other than the file holds.
 */

/** The most characters of an input's text a message repeats. */
export const SHOWN_CHARS = 80;

function unprintable(code: number): boolean {
  return code < 0x20 || (code >= 0x7f && code <= 0x9f) || (code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069);
}

/** `v` with control and bidirectional-override characters written as `\uXXXX`. */
export function printable(v: string): string {
  let out = '';
  for (let i = 0; i < v.length; i++) {
    const code = v.charCodeAt(i);
    out += unprintable(code) || code === 0x22 || code === 0x5c ? (code === 0x22 ? '\\"' : code === 0x5c ? '\\\\' : `\\u${code.toString(16).padStart(4, '0')}`) : v[i];
  }
  return out;
}

/**
 * `v` quoted for a message, at most {@link SHOWN_CHARS} characters of it: a longer value is cut,
 * marked with an ellipsis and followed by its full length, so the reader still knows what it was.
 */
export function shown(v: string, max = SHOWN_CHARS): string {
  if (v.length <= max) return `"${printable(v)}"`;
  let end = max;
  // Never cut between the two halves of a surrogate pair.
  const last = v.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `"${printable(v.slice(0, end))}…" (${v.length.toLocaleString('en-GB')} characters)`;
}

/** A list of input texts for a message: each {@link shown}, at most `count` of them. */
export function shownList(values: readonly string[], count = 40): string {
  const list = values.slice(0, count).map((v) => shown(v)).join(', ');
  return values.length > count ? `${list} and ${(values.length - count).toLocaleString('en-GB')} more` : list;
}

/**
 * `v` cut to {@link SHOWN_CHARS} characters for an error's detail (where it is data, not prose,
 * so it is not quoted or escaped): a client reading `detail.field` gets the name, not 200 MB.
 */
export function clip(v: string, max = SHOWN_CHARS): string {
  if (v.length <= max) return v;
  const last = v.charCodeAt(max - 1);
  return `${v.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max)}…`;
}

/** At most `count` of `values`, each {@link clip}ped: a header of a million columns is not repeated whole in an error. */
export function clipList(values: readonly string[], count = 40): string[] {
  return values.slice(0, count).map((v) => clip(v));
}
