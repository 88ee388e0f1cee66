/**
 * @module audit/report
 * The audit as one self-contained HTML page: inline CSS, bar charts as inline SVG drawn here in
 * Node, no script and nothing fetched, so it can be mailed, archived and read offline. Each chart
 * has a title and description for screen readers and a table with the same figures beside it.
 * The look follows the GOV.UK Design System's plain style (its colours, black header, tables).
 * Every value written into the page is escaped, the agency names included: they come from file
 * names and command lines, which are not ours to trust.
 */
import type { AgencyFigures, AuditReport, ItemFigures } from './audit.ts';
import { ITEMS, ITEM_INFO, type Item } from './values.ts';

/** Escapes text for HTML element content and attribute values. */
export function esc(v: unknown): string {
  return String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const fmt = new Intl.NumberFormat('en-GB');
const num = (n: number): string => fmt.format(n);
const pct = (part: number, whole: number): string => (whole === 0 ? '–' : `${(Math.round((part / whole) * 1000) / 10).toFixed(1)}%`);
function money(n: number, currency: string, pence = false): string {
  try {
    return new Intl.NumberFormat('en-GB', { style: 'currency', currency, minimumFractionDigits: pence ? 2 : 0, maximumFractionDigits: pence ? 2 : 0 }).format(n);
  } catch {
    return `${pence ? n.toFixed(2) : num(Math.round(n))} ${currency}`;
  }
}

const KIND_WORDS: Record<string, string> = {
  given_name: 'given name', surname: 'family name', full_name: 'full name', dob: 'date of birth', postcode: 'postcode',
  house_number: 'house number', street: 'address line', address: 'address', locality: 'town', email: 'email',
  identifier: 'identifier', sex: 'sex',
};

// GOV.UK Design System colours, chosen for contrast against white and each other.
const COLOURS = { blue: '#1d70b8', green: '#00703c', orange: '#f47738', red: '#d4351c', grey: '#b1b4b6', purple: '#4c2c92', black: '#0b0c0c' };

interface Series {
  name: string;
  colour: string;
  values: number[];
}

let chartCount = 0;

/**
 * A horizontal bar chart, stacked when there are several series. Sizes are fixed so the page
 * lays out the same everywhere; every bar's value is also in the table that follows the chart.
 */
export function barChart(opts: { title: string; description: string; categories: string[]; series: Series[]; format?: (n: number) => string }): string {
  const id = `chart-${++chartCount}`;
  const f = opts.format ?? num;
  const labelW = 200;
  const barW = 440;
  const rowH = 30;
  const legendH = opts.series.length > 1 ? 28 : 0;
  const width = labelW + barW + 110;
  const height = legendH + opts.categories.length * rowH + 10;
  const totals = opts.categories.map((_, i) => opts.series.reduce((s, x) => s + (x.values[i] ?? 0), 0));
  const max = Math.max(1, ...totals);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="${id}-t ${id}-d" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Arial, Helvetica, sans-serif" font-size="14">`);
  parts.push(`<title id="${id}-t">${esc(opts.title)}</title><desc id="${id}-d">${esc(opts.description)}</desc>`);
  if (legendH) {
    let x = labelW;
    for (const s of opts.series) {
      parts.push(`<rect x="${x}" y="6" width="14" height="14" fill="${s.colour}"/><text x="${x + 20}" y="18" fill="${COLOURS.black}">${esc(s.name)}</text>`);
      x += 34 + s.name.length * 8.5;
    }
  }
  opts.categories.forEach((cat, i) => {
    const y = legendH + i * rowH + 4;
    // Long names are shortened to fit; the table after the chart has them in full.
    const label = cat.length > 26 ? `${cat.slice(0, 25)}…` : cat;
    parts.push(`<text x="${labelW - 8}" y="${y + 17}" text-anchor="end" fill="${COLOURS.black}">${esc(label)}</text>`);
    let x = labelW;
    for (const s of opts.series) {
      const v = s.values[i] ?? 0;
      const w = (v / max) * barW;
      if (w > 0) parts.push(`<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${s.colour}"><title>${esc(`${cat}, ${s.name}: ${f(v)}`)}</title></rect>`);
      x += w;
    }
    parts.push(`<text x="${(x + 6).toFixed(1)}" y="${y + 17}" fill="${COLOURS.black}">${esc(f(totals[i]!))}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}

function table(caption: string, head: string[], rows: (string | number)[][], numericFrom = 1): string {
  const th = head.map((h, i) => `<th scope="col"${i >= numericFrom ? ' class="num"' : ''}>${esc(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c, i) => (i === 0 ? `<th scope="row">${esc(c)}</th>` : `<td${i >= numericFrom ? ' class="num"' : ''}>${esc(typeof c === 'number' ? num(c) : c)}</td>`)).join('')}</tr>`).join('\n');
  return `<table><caption>${esc(caption)}</caption><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

function figure(chart: string, tableHtml: string): string {
  return `<figure>${chart}<figcaption class="visually-hidden">The table below gives the same figures.</figcaption></figure>\n${tableHtml}`;
}

function itemRows(items: Record<Item, ItemFigures>): (string | number)[][] {
  return ITEMS.filter((i) => items[i].column !== null).map((i) => {
    const f = items[i];
    return [ITEM_INFO[i].label, f.copies, f.current, f.stale, f.conflict, f.missing, pct(f.stale + f.conflict, f.copies)];
  });
}

function agencySection(a: AgencyFigures, currency: string): string {
  const items = itemRows(a.items);
  return `<section aria-labelledby="agency-${esc(slug(a.agency))}">
<h3 id="agency-${esc(slug(a.agency))}">${esc(a.agency)}</h3>
<p class="hint">Extract: ${esc(a.source)}. Columns used: ${a.fields.map((f) => `${esc(f.column)} (${esc(KIND_WORDS[f.kind] ?? f.kind)})`).join(', ') || 'none'}.</p>
${table(`${a.agency}: rows`, ['Figure', 'Count'], [
    ['Rows in the extract', a.rows],
    ['Linked to one person in the register', a.linked],
    ['of which found on name and date of birth alone (address did not fit)', a.linkedOnIdentity],
    ['Not found in the register', a.unmatched],
    ['Ambiguous (two or more people fit)', a.ambiguous],
    ['Duplicate rows (a person\'s second and later rows)', a.duplicateRows],
    ['People with duplicate rows', a.peopleWithDuplicateRows],
    ['Rows of people the register records as dead', a.deceasedRows],
    ['People held', a.peopleHeld],
    ['Estimated yearly cost', money(a.cost.total, currency)],
  ])}
${items.length ? table(`${a.agency}: copies of each item`, ['Item', 'Copies', 'Current', 'Stale', 'Conflict', 'Missing', 'Stale or conflict'], items) : '<p>No item the register holds was recognised in this extract.</p>'}
</section>`;
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'agency';
}

const CSS = `
*{box-sizing:border-box}
body{margin:0;font-family:Arial,Helvetica,sans-serif;color:#0b0c0c;background:#fff;font-size:19px;line-height:1.32}
header{background:#0b0c0c;color:#fff;padding:12px 0;border-bottom:10px solid #1d70b8}
header p{margin:0 auto;max-width:960px;padding:0 15px;font-weight:700;font-size:24px}
main{max-width:960px;margin:0 auto;padding:20px 15px 40px}
h1{font-size:40px;margin:20px 0 10px}h2{font-size:30px;margin:45px 0 15px}h3{font-size:24px;margin:30px 0 10px}
.lead{font-size:22px}.hint{color:#505a5f;font-size:16px}
.cards{display:flex;flex-wrap:wrap;gap:15px;margin:20px 0}
.card{flex:1 1 200px;border-left:5px solid #1d70b8;background:#f3f2f1;padding:12px 15px}
.card b{display:block;font-size:32px}.card span{font-size:16px}
table{border-collapse:collapse;width:100%;margin:10px 0 25px;font-size:16px}
caption{text-align:left;font-weight:700;font-size:19px;padding-bottom:8px}
th,td{border-bottom:1px solid #b1b4b6;padding:8px 10px 8px 0;text-align:left;vertical-align:top}
.num{text-align:right}
figure{margin:10px 0;overflow-x:auto}
dl{font-size:16px}dt{font-weight:700;margin-top:10px}dd{margin-left:0}
.visually-hidden{position:absolute!important;width:1px!important;height:1px!important;overflow:hidden!important;clip:rect(0 0 0 0)!important;white-space:nowrap!important}
footer{border-top:1px solid #b1b4b6;max-width:960px;margin:0 auto;padding:15px;font-size:16px;color:#505a5f}
`;

/** Renders the report as one HTML document. */
export function renderHtml(report: AuditReport): string {
  chartCount = 0;
  const t = report.total;
  const cur = report.settings.costs.currency;
  const agencies = report.agencies;
  const names = agencies.map((a) => a.agency);
  const itemsHeld = ITEMS.filter((i) => t.items[i].column !== null);
  const copies = itemsHeld.reduce((s, i) => s + t.items[i].copies, 0);
  const bad = itemsHeld.reduce((s, i) => s + t.items[i].stale + t.items[i].conflict, 0);
  const heldBy = Object.entries(t.peopleHeldBy).sort(([a], [b]) => Number(a) - Number(b));

  const rowsChart = barChart({
    title: 'Rows of each extract, by whether the register could tell whose they are',
    description: `For each of ${agencies.length} agencies, rows linked to one person, ambiguous rows and rows not found in the register.`,
    categories: names,
    series: [
      { name: 'Linked', colour: COLOURS.blue, values: agencies.map((a) => a.linked) },
      { name: 'Ambiguous', colour: COLOURS.orange, values: agencies.map((a) => a.ambiguous) },
      { name: 'Not found', colour: COLOURS.grey, values: agencies.map((a) => a.unmatched) },
    ],
  });
  const itemChart = barChart({
    title: 'Copies of each item held beyond the register, by state',
    description: 'For each item, across all agencies, copies equal to the register\'s current value, stale copies and conflicting copies.',
    categories: itemsHeld.map((i) => ITEM_INFO[i].label),
    series: [
      { name: 'Current', colour: COLOURS.blue, values: itemsHeld.map((i) => t.items[i].current) },
      { name: 'Stale', colour: COLOURS.orange, values: itemsHeld.map((i) => t.items[i].stale) },
      { name: 'Conflict', colour: COLOURS.red, values: itemsHeld.map((i) => t.items[i].conflict) },
    ],
  });
  const agencyBadChart = barChart({
    title: 'Stale and conflicting copies, by agency',
    description: 'For each agency, the number of copies of any item that are stale or that conflict with the register.',
    categories: names,
    series: [
      { name: 'Stale', colour: COLOURS.orange, values: agencies.map((a) => ITEMS.reduce((s, i) => s + a.items[i].stale, 0)) },
      { name: 'Conflict', colour: COLOURS.red, values: agencies.map((a) => ITEMS.reduce((s, i) => s + a.items[i].conflict, 0)) },
    ],
  });
  const heldByChart = barChart({
    title: 'People in the register by how many agencies hold a copy of their data',
    description: 'Number of register people held by one, two, three or more agencies.',
    categories: heldBy.map(([k]) => `${k} ${k === '1' ? 'agency' : 'agencies'}`),
    series: [{ name: 'People', colour: COLOURS.purple, values: heldBy.map(([, v]) => v) }],
  });
  const costChart = barChart({
    title: `Estimated yearly cost of keeping the copies, by agency (${cur})`,
    description: 'For each agency, the estimated yearly cost of its records, of keeping its copies of items up to date, and of putting right its stale and conflicting copies.',
    categories: names,
    series: [
      { name: 'Records', colour: COLOURS.blue, values: agencies.map((a) => a.cost.records) },
      { name: 'Keeping items current', colour: COLOURS.green, values: agencies.map((a) => a.cost.items) },
      { name: 'Putting errors right', colour: COLOURS.red, values: agencies.map((a) => a.cost.discrepancies) },
    ],
    format: (n) => money(n, cur),
  });

  const c = report.settings.costs;
  const body = `
<h1>Duplication audit</h1>
<p class="lead">${num(t.rows)} rows from ${agencies.length} ${agencies.length === 1 ? 'agency' : 'agencies'} compared with the ${esc(report.register.source)} (${num(report.register.people)} people).</p>
<div class="cards">
<div class="card"><b>${num(t.peopleHeld)}</b><span>people whose data is held in redundant copies</span></div>
<div class="card"><b>${num(t.peopleHeldBySeveral)}</b><span>held by two or more agencies</span></div>
<div class="card"><b>${num(copies)}</b><span>copies of items the register holds</span></div>
<div class="card"><b>${pct(bad, copies)}</b><span>of those copies stale or conflicting</span></div>
<div class="card"><b>${esc(money(t.cost.total, cur))}</b><span>estimated yearly cost of the copies</span></div>
</div>

<h2 id="rows">Rows found in the register</h2>
${figure(rowsChart, table('Rows by agency', ['Agency', 'Rows', 'Linked', 'Ambiguous', 'Not found', 'Duplicate rows', 'Dead per register'], [
    ...agencies.map((a) => [a.agency, a.rows, a.linked, a.ambiguous, a.unmatched, a.duplicateRows, a.deceasedRows]),
    ['All agencies', t.rows, t.linked, t.ambiguous, t.unmatched, t.duplicateRows, t.deceasedRows],
  ]))}

<h2 id="items">Copies of each item</h2>
${figure(itemChart, table('Copies of each item, all agencies', ['Item', 'Copies', 'Current', 'Stale', 'Conflict', 'Missing', 'Stale or conflict'], itemRows(t.items)))}
${figure(agencyBadChart, table('Stale and conflicting copies by agency', ['Agency', 'Stale', 'Conflict'], agencies.map((a) => [a.agency, ITEMS.reduce((s, i) => s + a.items[i].stale, 0), ITEMS.reduce((s, i) => s + a.items[i].conflict, 0)])))}

<h2 id="people">People held in redundant copies</h2>
${figure(heldByChart, table('People by number of agencies holding them', ['Held by', 'People'], heldBy.map(([k, v]) => [`${k} ${k === '1' ? 'agency' : 'agencies'}`, v])))}
<p>${num(t.peopleWithDuplicateRows)} ${t.peopleWithDuplicateRows === 1 ? 'person has' : 'people have'} more than one row in the same agency.</p>

<h2 id="cost">Estimated yearly cost</h2>
${figure(costChart, table(`Estimated yearly cost (${cur})`, ['Agency', 'Records', 'Keeping items current', 'Putting errors right', 'Total'], [
    ...agencies.map((a) => [a.agency, money(a.cost.records, cur), money(a.cost.items, cur), money(a.cost.discrepancies, cur), money(a.cost.total, cur)]),
    ['All agencies', money(t.cost.records, cur), money(t.cost.items, cur), money(t.cost.discrepancies, cur), money(t.cost.total, cur)],
  ]))}
<p class="hint">Costs used: ${esc(money(c.perRecord, cur, true))} per record a year; per copy of an item a year: ${ITEMS.map((i) => `${esc(ITEM_INFO[i].label.toLowerCase())} ${esc(money(c.perItem[i], cur, true))}`).join(', ')}; ${esc(money(c.perDiscrepancy, cur, true))} to put right each stale or conflicting copy. These are estimates; their sources are in docs/audit.md, and other figures can be given with --costs.</p>

<h2 id="agencies">Each agency</h2>
${agencies.map((a) => agencySection(a, cur)).join('\n')}

<h2 id="definitions">What the figures mean</h2>
<dl>
<dt>Linked</dt><dd>The row's best match in the register has a match probability of at least ${esc(report.settings.threshold)}, and is at least ${esc(report.settings.margin)} bits (${esc(num(2 ** report.settings.margin))} times) more likely than any other person who also reaches it.</dd>
<dt>Ambiguous</dt><dd>Two or more people reach the threshold and the best is not clearly ahead of the next.</dd>
<dt>Not found</dt><dd>No one in the register reaches the threshold: someone the register does not know, or a row too damaged to link.</dd>
<dt>Duplicate rows</dt><dd>A linked row for a person who already has a linked row in the same agency.</dd>
<dt>Copies</dt><dd>Values in linked rows of items the register already holds: each is a copy beyond the register's. Ambiguous and unfound rows are not counted.</dd>
<dt>Current, stale, conflict</dt><dd>Current: the register's value now. Stale: a value the register held for that person earlier (an old address, a name before marriage). Conflict: a value the register never held for them (a typo, a nickname, a wrong date, an address it was never told of).</dd>
<dt>People whose data is held in redundant copies</dt><dd>Register people linked from at least one row of any extract: everything the agency copied is already held, once, in the register.</dd>
</dl>
<p class="hint">This report shows counts only; it contains no person's data.</p>`;

  return `<!DOCTYPE html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Duplication audit: ${num(t.rows)} rows from ${agencies.length} ${agencies.length === 1 ? 'agency' : 'agencies'}</title>
<style>${CSS}</style>
</head>
<body>
<header><p>onceonly</p></header>
<main>${body}
</main>
<footer>Generated by onceonly's duplication audit from the register "${esc(report.register.source)}". Figures are counts; see docs/audit.md for how each is computed.</footer>
</body>
</html>
`;
}
