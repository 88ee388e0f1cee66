/**
 * @module audit/values
 * The data items the duplication audit counts, and how two values of one item are judged the
 * same. The rule is deliberately forgiving of presentation (case, accents, punctuation, spacing,
 * date format) and strict about content: "o'brien" and "OBrien" are one value, "Bill" and
 * "William" are two. The extract generator uses the same rule to check that every piece of
 * damage it records really changed the value, so its truth and the audit speak of the same thing.
 */

/** The items of a person the audit counts copies of. */
export const ITEMS = ['givenName', 'familyName', 'birthDate', 'address', 'postcode'] as const;
export type Item = (typeof ITEMS)[number];

/** Words for people, and the catalogue item each audit item is part of. */
export const ITEM_INFO: Record<Item, { label: string; catalogue: string }> = {
  givenName: { label: 'Given name', catalogue: 'person.givenName' },
  familyName: { label: 'Family name', catalogue: 'person.familyName' },
  birthDate: { label: 'Date of birth', catalogue: 'person.birthDate' },
  address: { label: 'Address', catalogue: 'person.address' },
  postcode: { label: 'Postcode', catalogue: 'person.address' },
};

/**
 * How a copy of an item compares with the register: the register's value now (`current`), a
 * value the register held for this person earlier (`stale`), a value it never held for them
 * (`conflict`), or no value at all (`missing`).
 */
export type ItemState = 'current' | 'stale' | 'conflict' | 'missing';
export const STATES: readonly ItemState[] = ['current', 'stale', 'conflict', 'missing'];

function stripAccents(s: string): string {
  return s.normalize('NFKD').replace(/[\u0300-\u036f]/g, '');
}

/** Letters only, lower case: hyphens, apostrophes and spaces are presentation. */
function nameKey(v: string): string {
  return stripAccents(v.toLowerCase()).replace(/[^a-z]/g, '');
}

/** Letters and digits as words: "14, Mill  Lane" and "14 mill lane" are one address line. */
function textKey(v: string): string {
  return stripAccents(v.toLowerCase()).replace(/[^a-z0-9]+/g, ' ').trim();
}

/**
 * A date of birth as `YYYY-MM-DD` from ISO, `YYYYMMDD` or `DD/MM/YYYY` (the formats agencies'
 * extracts use); anything else is kept as its digits so that a garbled date is still a value
 * (a conflict), not a missing one.
 */
export function dateKey(v: string): string {
  const s = v.trim();
  let m = /^(\d{4})-?(\d{2})-?(\d{2})$/.exec(s);
  if (m) return `${m[1]}-${m[2]}-${m[3]}`;
  m = /^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$/.exec(s);
  if (m) return `${m[3]}-${m[2]!.padStart(2, '0')}-${m[1]!.padStart(2, '0')}`;
  return s.replace(/\D/g, '') || s.toLowerCase();
}

function postcodeKey(v: string): string {
  return v.toUpperCase().replace(/[^A-Z0-9]/g, '');
}

/** The comparable form of a value of `item`; the empty string means "no value". */
export function valueKey(item: Item, v: string | null | undefined): string {
  if (v === null || v === undefined) return '';
  switch (item) {
    case 'givenName':
    case 'familyName':
      return nameKey(v);
    case 'birthDate':
      return v.trim() === '' ? '' : dateKey(v);
    case 'address':
      return textKey(v);
    case 'postcode':
      return postcodeKey(v);
  }
}

/** The values of each item the register holds for one person: now, and earlier. */
export interface HeldValues {
  current: Record<Item, string>;
  /** Earlier values (as keys), not including the current one. */
  earlier: Record<Item, Set<string>>;
}

/** Compares one copied value with what the register holds for the person. */
export function classify(item: Item, value: string | null | undefined, held: HeldValues): ItemState {
  const k = valueKey(item, value);
  if (k === '') return 'missing';
  if (k === held.current[item]) return 'current';
  if (held.earlier[item].has(k)) return 'stale';
  return 'conflict';
}

/**
 * Nicknames and short forms of common English given names (a small built-in table; the source is
 * common usage, e.g. the nickname lists genealogists use). Used only to damage extracts: the
 * audit itself counts a nickname as a value the register never held.
 */
export const NICKNAMES: Readonly<Record<string, readonly string[]>> = {
  Abigail: ['Abby'], Abraham: ['Abe'], Alan: ['Al'], Albert: ['Al', 'Bert'], Alexander: ['Alex', 'Sandy'],
  Alexandra: ['Alex', 'Sasha'], Alexandria: ['Alex'], Alfred: ['Alf', 'Fred'], Amelia: ['Millie'],
  Andrew: ['Andy', 'Drew'], Anthony: ['Tony'], Archibald: ['Archie'], Arthur: ['Art', 'Artie'],
  Augustus: ['Gus'], Barbara: ['Barb', 'Babs'], Bartholomew: ['Bart'], Beatrice: ['Bea'],
  Benedict: ['Ben'], Benjamin: ['Ben', 'Benny'], Bernard: ['Bernie'], Bradley: ['Brad'],
  Bridget: ['Biddy'], Cameron: ['Cam'], Caroline: ['Carrie'], Cassandra: ['Cassie'],
  Catherine: ['Cathy', 'Kate'], Cecilia: ['Cissy'], Charles: ['Charlie', 'Chas'],
  Charlotte: ['Lottie', 'Charlie'], Christine: ['Chris', 'Tina'], Christophe: ['Chris'],
  Christopher: ['Chris', 'Kit'], Clifford: ['Cliff'], Cornelius: ['Neil'], Cynthia: ['Cindy'],
  Daniel: ['Dan', 'Danny'], Daniela: ['Dani'], David: ['Dave'], Deborah: ['Debbie', 'Deb'],
  Dominic: ['Dom'], Donald: ['Don'], Dorothy: ['Dot', 'Dolly'], Douglas: ['Doug'],
  Edward: ['Ed', 'Ted', 'Eddie'], Edwin: ['Ed'], Eleanor: ['Ellie', 'Nell'],
  Elizabeth: ['Liz', 'Beth', 'Betty', 'Lizzie'], Emily: ['Em', 'Emmy'], Emmanuel: ['Manny'],
  Estella: ['Stella'], Eugene: ['Gene'], Ezekiel: ['Zeke'], Florence: ['Flo'], Frances: ['Fran'],
  Francis: ['Frank'], Franklin: ['Frank'], Frederick: ['Fred', 'Freddie'], Gabriel: ['Gabe'],
  Gabriella: ['Gabby'], Gerald: ['Gerry'], Gerard: ['Gerry'], Gilbert: ['Gil'], Gregory: ['Greg'],
  Gwendolyn: ['Gwen'], Harold: ['Harry'], Harriet: ['Hattie'], Henry: ['Harry', 'Hal'], Herbert: ['Bert'],
  Isaac: ['Ike'], Isabella: ['Bella', 'Izzy'], Isabelle: ['Izzy'], Jacob: ['Jake'], Jacqueline: ['Jackie'],
  James: ['Jim', 'Jimmy', 'Jamie'], Jeffrey: ['Jeff'], Jennifer: ['Jen', 'Jenny'], Jerome: ['Jerry'],
  Jessica: ['Jess'], Joanne: ['Jo'], John: ['Jack', 'Johnny'], Jonathan: ['Jon'], Josefa: ['Josie'],
  Joseph: ['Joe', 'Joey'], Josephine: ['Jo', 'Josie'], Joshua: ['Josh'],
  Katherine: ['Kate', 'Kathy', 'Katie'], Kenneth: ['Ken'], Kimberly: ['Kim'], Lawrence: ['Larry'],
  Leonard: ['Len', 'Lenny'], Leonardo: ['Leo'], Lorenzo: ['Enzo'], Louis: ['Lou'], Lucy: ['Lu'],
  Madeline: ['Maddie'], Margaret: ['Peggy', 'Maggie', 'Meg'], Marjorie: ['Marge'],
  Mary: ['Molly', 'Polly'], Matilda: ['Tilly'], Matthew: ['Matt'], Maximilian: ['Max'],
  Michael: ['Mike', 'Mick'], Mildred: ['Millie'], Millicent: ['Millie'], Montgomery: ['Monty'],
  Nathaniel: ['Nate'], Nicholas: ['Nick', 'Nicky'], Nichole: ['Nikki'], Nicole: ['Nikki'],
  Oliver: ['Ollie'], Olivia: ['Liv', 'Livvy'], Pamela: ['Pam'], Patricia: ['Pat', 'Trish'],
  Patrick: ['Paddy', 'Pat'], Penelope: ['Penny'], Percival: ['Percy'], Peter: ['Pete'], Philip: ['Phil'],
  Phillip: ['Phil'], Prudence: ['Prue'], Randall: ['Randy'], Raymond: ['Ray'], Rebecca: ['Becky', 'Becca'],
  Reginald: ['Reg'], Richard: ['Rick', 'Dick', 'Richie'], Robert: ['Bob', 'Rob', 'Bobby'],
  Roberta: ['Bobbie'], Ronald: ['Ron', 'Ronnie'], Rosalind: ['Ros'], Rudolph: ['Rudy'], Russell: ['Russ'],
  Samantha: ['Sam'], Samuel: ['Sam', 'Sammy'], Sandra: ['Sandy'], Sophia: ['Sophie'], Stanley: ['Stan'],
  Stephen: ['Steve'], Steven: ['Steve'], Susan: ['Sue', 'Susie'], Sylvester: ['Sly'], Terence: ['Terry'],
  Theodore: ['Theo', 'Ted'], Theresa: ['Tess'], Thomas: ['Tom', 'Tommy'], Timothy: ['Tim'],
  Valentine: ['Val'], Veronica: ['Ronnie'], Victoria: ['Vicky', 'Tori'], Vincent: ['Vince'],
  Walter: ['Walt'], Wilfred: ['Wilf'], Wilfrid: ['Wilf'], William: ['Bill', 'Will', 'Billy'],
  Winifred: ['Winnie'], Zachariah: ['Zach'], Zachary: ['Zac'],
};
