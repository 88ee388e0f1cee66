/**
 * @module catalogue/forms
 * The duplicate-collection check: Estonia's once-only rule (Public Information Act § 43^3 and the
 * RIHA practice built on it) says data a base register masters may not be collected again. Given a
 * form definition, this module lists every question that asks for a mastered item, says which
 * registry masters it, and whether an agreement in force already lets the form's service re-use it.
 *
 * A question names its item explicitly (`item:`), or is matched by its label against the items'
 * labels and synonyms; the second kind is reported as "probably". The matcher is token based and
 * prefers the longest phrase; a short list of not-mastered phrases ("email address") competes
 * with the item phrases, so that "Email address" is never taken for a home address.
 */
import { parseIsoDate } from '../core/dates.ts';
import type { Catalogue, CatalogueItem } from './catalogue.ts';
import type { Agreement, AgreementRegister } from './agreements.ts';
import { ProblemCollector, readDocument, type DocPath, type Locator } from './document.ts';
import { isInForce } from './agreements.ts';

/** One question of a form. */
export interface FormQuestion {
  /** Unique within the form. */
  readonly id: string;
  /** The question as the user sees it. */
  readonly label: string;
  /** The catalogue item this question collects, when the form author declared it. */
  readonly item?: string;
  readonly hint?: string;
}

/** A form definition. */
export interface FormDefinition {
  /** Slug, e.g. `resident-parking-permit`. */
  readonly id: string;
  readonly title: string;
  /** The subsystem of the service that owns the form. */
  readonly service: string;
  readonly questions: readonly FormQuestion[];
}

/** How sure the check is that a question collects an item. */
export type Certainty = 'explicit' | 'probably';

/** A question that collects an item some other registry masters. */
export interface FormFinding {
  readonly questionId: string;
  readonly label: string;
  /** Catalogue item id. */
  readonly item: string;
  readonly itemLabel: string;
  readonly classification: CatalogueItem['classification'];
  readonly certainty: Certainty;
  /** For `probably`: the label or synonym found in the question. */
  readonly matched?: string;
  /** The registry subsystem that masters the item. */
  readonly owner: string;
  /** An agreement in force that lets the form's service read the item from its owner, or null. */
  readonly agreement: string | null;
  /** What the form's owner should do instead of asking. */
  readonly advice: string;
}

/** The result of {@link checkForm}. */
export interface FormReport {
  readonly form: string;
  readonly title: string;
  readonly service: string;
  /** The day agreements were checked against, `YYYY-MM-DD`. */
  readonly date: string;
  /** True when no question re-collects mastered data. */
  readonly ok: boolean;
  /** Number of questions checked. */
  readonly questions: number;
  readonly findings: readonly FormFinding[];
}

/** A question id: a letter, then letters, digits, `-` or `_`. */
export const QUESTION_ID = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

/**
 * Phrases that contain an item's words but mean something no registry masters. They take part in
 * the longest-match contest and, when they win, hide the item phrases they overlap: "email
 * address" contains "address" but is not a home address. Kept deliberately short: every entry is
 * a word sequence that collides with a catalogue synonym.
 */
export const NOT_MASTERED_PHRASES: readonly string[] = [
  'email address',
  'e mail address',
  'web address',
  'website address',
  'ip address',
  'mac address',
  'correspondence address',
  'forwarding address',
  'delivery address',
  'return address',
  'name of your bank',
  'bank name',
  'account name',
  'user name',
];

/**
 * Normalises text into tokens: case-folded, accents removed, punctuation as space, "(s)" dropped
 * and simple English plurals reduced, so "Forename(s)", "forenames" and "FORENAME" all meet.
 */
export function tokens(text: string): string[] {
  return text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/\(s\)/g, '')
    .replace(/['’]s\b/g, '')
    .split(/[^a-z0-9]+/)
    .filter((t) => t !== '')
    .map(singular);
}

function singular(t: string): string {
  if (t.length <= 3) return t;
  if (/(ss|us|is)$/.test(t)) return t;
  if (/(sses|xes|zes|ches|shes)$/.test(t)) return t.slice(0, -2);
  if (t.endsWith('s')) return t.slice(0, -1);
  return t;
}

interface Phrase {
  readonly tokens: readonly string[];
  readonly text: string;
  /** Undefined for a not-mastered phrase. */
  readonly item?: CatalogueItem;
  readonly isLabel: boolean;
  /** Catalogue order, for a stable tie-break. */
  readonly order: number;
}

interface Match {
  readonly phrase: Phrase;
  readonly start: number;
  readonly end: number;
}

/** A label match: the item a question label most likely asks for. */
export interface LabelMatch {
  readonly item: CatalogueItem;
  /** The label or synonym that was found. */
  readonly matched: string;
}

const phraseCache = new WeakMap<Catalogue, Phrase[]>();

function phrasesOf(catalogue: Catalogue): Phrase[] {
  let phrases = phraseCache.get(catalogue);
  if (phrases) return phrases;
  phrases = [];
  catalogue.list().forEach((item, order) => {
    for (const [text, isLabel] of [[item.label, true], ...item.synonyms.map((s) => [s, false] as const)] as const) {
      const t = tokens(text);
      if (t.length > 0) phrases.push({ tokens: t, text, item, isLabel, order });
    }
  });
  for (const text of NOT_MASTERED_PHRASES) phrases.push({ tokens: tokens(text), text, isLabel: false, order: -1 });
  phraseCache.set(catalogue, phrases);
  return phrases;
}

function occurrences(haystack: readonly string[], needle: readonly string[]): number[] {
  const out: number[] = [];
  for (let i = 0; i + needle.length <= haystack.length; i++) {
    if (needle.every((t, j) => haystack[i + j] === t)) out.push(i);
  }
  return out;
}

/**
 * Finds the catalogue item a question label most likely asks for, or undefined. Every label and
 * synonym is looked for as a whole token sequence; matches are taken longest first (then labels
 * before synonyms, then catalogue order), and a match overlapping one already taken is dropped.
 * The longest surviving item match wins.
 */
export function matchLabel(label: string, catalogue: Catalogue): LabelMatch | undefined {
  const q = tokens(label);
  const matches: Match[] = [];
  for (const phrase of phrasesOf(catalogue)) {
    for (const start of occurrences(q, phrase.tokens)) matches.push({ phrase, start, end: start + phrase.tokens.length });
  }
  matches.sort(
    (a, b) =>
      b.phrase.tokens.length - a.phrase.tokens.length ||
      // A not-mastered phrase beats an item phrase of the same length: when in doubt, do not flag.
      Number(a.phrase.item !== undefined) - Number(b.phrase.item !== undefined) ||
      Number(b.phrase.isLabel) - Number(a.phrase.isLabel) ||
      a.phrase.order - b.phrase.order ||
      a.start - b.start,
  );
  const taken: Match[] = [];
  for (const m of matches) {
    if (taken.some((t) => m.start < t.end && t.start < m.end)) continue;
    taken.push(m);
  }
  const best = taken.find((m) => m.phrase.item !== undefined);
  return best?.phrase.item ? { item: best.phrase.item, matched: best.phrase.text } : undefined;
}

/**
 * Checks a parsed form document against the catalogue; every problem (including a question that
 * names an unknown item) is collected and thrown together as one `invalid_file`.
 */
export function parseForm(doc: unknown, file: string, catalogue: Catalogue, locate?: Locator): FormDefinition {
  const p = new ProblemCollector(file, locate);
  const o = p.object(doc, [], ['id', 'title', 'service', 'questions'], ['description'], true);
  if (!o) {
    p.throwIfAny('form');
    throw new Error('unreachable: a non-object form was not reported');
  }
  const id = p.slug(o['id'], ['id']);
  const title = p.string(o['title'], ['title']);
  const service = p.subsystem(o['service'], ['service']);
  if (o['description'] !== undefined) p.string(o['description'], ['description']);
  const list = p.array(o['questions'], ['questions'], true) ?? [];
  const questions: FormQuestion[] = [];
  const seen = new Map<string, number>();
  list.forEach((raw, index) => {
    const at: DocPath = ['questions', index];
    const q = p.object(raw, at, ['id', 'label'], ['item', 'hint']);
    if (!q) return;
    const qid = p.string(q['id'], [...at, 'id'], QUESTION_ID, 'a letter, then letters, digits, "-" or "_"');
    const label = p.string(q['label'], [...at, 'label']);
    const hint = q['hint'] === undefined ? undefined : p.string(q['hint'], [...at, 'hint']);
    const item = q['item'] === undefined ? undefined : p.string(q['item'], [...at, 'item']);
    const name = qid ?? `questions[${index}]`;
    if (item !== undefined && !catalogue.get(item)) {
      p.report([...at, 'item'], `question "${name}" names "${item}", which is not an item of the catalogue`, 'an item id listed at GET /catalogue/items, or no item');
    }
    if (qid !== undefined) {
      const prior = seen.get(qid);
      if (prior !== undefined) p.report([...at, 'id'], `duplicate question id "${qid}" (first at questions[${prior}])`, 'each question id once');
      else seen.set(qid, index);
    }
    if (qid === undefined || label === undefined) return;
    questions.push({ id: qid, label, ...(item !== undefined ? { item } : {}), ...(hint !== undefined ? { hint } : {}) });
  });
  p.throwIfAny('form');
  // Every field was checked above; a missing one would have thrown.
  return { id: id as string, title: title as string, service: service as string, questions };
}

/** Reads and checks a form definition file (`.yaml`, `.yml` or `.json`). */
export function loadForm(file: string, catalogue: Catalogue): FormDefinition {
  const { doc, locate } = readDocument(file);
  return parseForm(doc, file, catalogue, locate);
}

/**
 * Lists the questions of `form` that collect an item another registry masters, with the agreement
 * in force on `date` (if any) that lets the form's service re-use it instead. A question for an
 * item the form's own service masters passes: that is where the fact is acquired once.
 */
export function checkForm(form: FormDefinition, catalogue: Catalogue, agreements: AgreementRegister, date: string): FormReport {
  const day = parseIsoDate(date, 'date');
  const findings: FormFinding[] = [];
  for (const q of form.questions) {
    let item: CatalogueItem | undefined;
    let matched: string | undefined;
    let certainty: Certainty;
    if (q.item !== undefined) {
      item = catalogue.require(q.item, `questions.${q.id}.item`);
      certainty = 'explicit';
    } else {
      const m = matchLabel(q.label, catalogue);
      item = m?.item;
      matched = m?.matched;
      certainty = 'probably';
    }
    if (!item || item.owner === form.service) continue;
    const agreement = agreements.findCovering({ client: form.service, provider: item.owner, items: [item.id], date: day }) ?? null;
    findings.push({
      questionId: q.id,
      label: q.label,
      item: item.id,
      itemLabel: item.label,
      classification: item.classification,
      certainty,
      ...(matched !== undefined ? { matched } : {}),
      owner: item.owner,
      agreement: agreement?.id ?? null,
      advice: advise(form, item, certainty, matched, agreement, agreements, day),
    });
  }
  return { form: form.id, title: form.title, service: form.service, date: day, ok: findings.length === 0, questions: form.questions.length, findings };
}

function advise(
  form: FormDefinition,
  item: CatalogueItem,
  certainty: Certainty,
  matched: string | undefined,
  agreement: Agreement | null,
  register: AgreementRegister,
  date: string,
): string {
  const parts: string[] = [];
  if (certainty === 'probably') {
    parts.push(`The label contains "${matched ?? item.label}", so this question probably asks for ${item.id} (${item.label}); if it does not, reword the label, and if it does, declare "item: ${item.id}".`);
  }
  if (agreement) {
    let how = `Do not ask: read ${item.id} from ${item.owner} under agreement ${agreement.id} (purpose ${agreement.purpose.id}) and show it prefilled and read-only.`;
    if (agreement.consentRequired) how += ' The agreement requires the person\'s consent before the registry releases it.';
    if (agreement.previewRequired) how += ' The person previews the data at the source and approves its release.';
    parts.push(how);
  } else {
    const lapsed = register
      .list()
      .filter((a) => a.client === form.service && a.provider === item.owner && a.items.includes(item.id) && !isInForce(a, date));
    let how = `${item.owner} masters ${item.id}, and no agreement in force lets ${form.service} read it: ask the central authority for one, so the question can go.`;
    const last = lapsed.at(-1);
    if (last) how += ` Agreement ${last.id} covered it from ${last.validFrom} to ${last.validUntil}.`;
    if (item.classification === 'special-category') how += ' It is special-category data (UK GDPR Art. 9): an agreement needs an Art. 9(2) condition, usually explicit consent.';
    parts.push(how);
  }
  return parts.join(' ');
}
