// The table of finetune/report.py's pages (inlined into each page): reads the embedded JSON, builds the
// rows with textContent only, sorts, filters and shows a row's text with its spans highlighted.
"use strict";
const page = JSON.parse(document.getElementById("report-data").textContent);
const { columns, rows, textKey, kinds } = page;
const batch = page.rowsPerBatch;
const collator = new Intl.Collator(undefined, { numeric: true });
const searchBox = document.getElementById("search");
const count = document.getElementById("count");
const body = document.getElementById("rows");
const more = document.getElementById("more");
const opened = new Set();  // rows whose text is shown
const haystacks = new Map();  // row -> its lower-case text, made on the first search
let order = rows.map((_, i) => i), sortKey = null, direction = 1, limit = batch;

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

// One <select> per column with few values; option values are indices into choices, so any value (even "") works.
const filters = columns.filter(c => c.choices).map(column => {
  const select = element("select");
  select.append(new Option("all", ""));
  column.choices.forEach((choice, i) =>
    select.append(new Option(choice === "" || choice === null ? "(empty)" : String(choice), i)));
  const label = element("label", column.heading + " ");
  label.append(select);
  document.getElementById("filters").append(label);
  select.addEventListener("change", () => { limit = batch; render(); });
  return { key: column.key, choices: column.choices, select };
});

function haystack(i) {
  if (!haystacks.has(i)) {
    const parts = columns.map(c => shown(rows[i][c.key], c) ?? "");  // as displayed: "0.9490", not 0.949
    if (textKey) parts.push(rows[i][textKey] ?? "");
    haystacks.set(i, parts.join("\n").toLowerCase());
  }
  return haystacks.get(i);
}

function matches(i, query) {
  for (const f of filters) {
    if (f.select.value !== "" && rows[i][f.key] !== f.choices[Number(f.select.value)]) return false;
  }
  return !query || haystack(i).includes(query);
}

function compare(a, b, column) {
  const x = rows[a][column.key], y = rows[b][column.key];
  if (x === y) return 0;
  if (x === null || x === undefined) return 1;  // empty cells last, in both directions
  if (y === null || y === undefined) return -1;
  return direction * (column.numeric ? x - y : collator.compare(String(x), String(y)));
}

function sortBy(column, heading) {
  direction = sortKey === column.key ? -direction : 1;
  sortKey = column.key;
  order = rows.map((_, i) => i).sort((a, b) => compare(a, b, column) || a - b);
  document.querySelectorAll("th").forEach(th => th.removeAttribute("aria-sort"));
  heading.setAttribute("aria-sort", direction > 0 ? "ascending" : "descending");
  render();
}

// The text with its spans highlighted. Offsets count code points, as Python's str does (Array.from, not UTF-16).
function highlighted(text, spans) {
  const chars = Array.from(String(text));
  const cuts = new Set([0, chars.length]);
  const valid = (spans || []).filter(([s, e]) => e > s).map(([s, e, kind]) =>
    [Math.max(0, Math.min(s, chars.length)), Math.max(0, Math.min(e, chars.length)), kind]);
  valid.forEach(([s, e]) => { cuts.add(s); cuts.add(e); });
  const points = [...cuts].sort((a, b) => a - b);
  const block = element("div", null, "text");
  for (let p = 0; p + 1 < points.length; p++) {
    const piece = chars.slice(points[p], points[p + 1]).join("");
    const active = Object.keys(kinds).filter(k => valid.some(([s, e, kind]) =>
      kind === k && s <= points[p] && points[p + 1] <= e));
    if (!active.length) { block.append(piece); continue; }
    const mark = element("mark", piece);
    mark.style.background = stripes(active);
    mark.title = active.map(k => kinds[k].label).join(" + ");
    block.append(mark);
  }
  return block;
}

function stripes(active) {
  if (active.length === 1) return kinds[active[0]].colour;
  const step = 100 / active.length;
  const bands = active.map((k, n) => `${kinds[k].colour} ${n * step}% ${(n + 1) * step}%`);
  return `linear-gradient(to bottom, ${bands.join(", ")})`;
}

function shown(value, column) {
  return column.numeric && value !== null ? value.toFixed(column.decimals) : value;
}

// Short columns are as narrow as their values; the text columns (or else the last column) take the rest.
const anyWide = columns.some(c => c.wide);
function classes(column) {
  const wide = column.wide || (!anyWide && column === columns[columns.length - 1]);
  return [column.numeric ? "number" : "", wide ? "" : "short"].join(" ").trim();
}

function rowElements(i) {
  const tr = element("tr");
  if (textKey) {
    tr.className = "expandable";
    tr.tabIndex = 0;
    tr.append(element("td", opened.has(i) ? "\u25BE" : "\u25B8", "toggle short"));
    const toggle = () => { opened.has(i) ? opened.delete(i) : opened.add(i); render(); };
    tr.addEventListener("click", toggle);
    tr.addEventListener("keydown", event => { if (event.key === "Enter") toggle(); });
  }
  for (const column of columns) tr.append(element("td", shown(rows[i][column.key], column), classes(column)));
  if (!textKey || !opened.has(i)) return [tr];
  const text = element("tr", null, "text");
  const cell = element("td");
  cell.colSpan = columns.length + 1;
  cell.append(highlighted(rows[i][textKey] ?? "", rows[i].spans));
  text.append(cell);
  return [tr, text];
}

function render() {
  const query = searchBox.value.trim().toLowerCase();
  const shown = order.filter(i => matches(i, query));
  count.textContent = `${shown.length} of ${rows.length} shown`;
  body.replaceChildren(...shown.slice(0, limit).flatMap(rowElements));
  const rest = shown.length - limit;
  more.hidden = rest <= 0;
  more.textContent = `Show ${Math.min(batch, rest)} more (${rest} not listed yet)`;
}

const head = document.getElementById("head");
if (textKey) head.append(element("th", null, "short"));
for (const column of columns) {
  const th = element("th", column.heading, classes(column));
  th.title = "Click to sort; click again to reverse";
  th.tabIndex = 0;
  th.addEventListener("click", () => sortBy(column, th));
  th.addEventListener("keydown", event => { if (event.key === "Enter") sortBy(column, th); });
  head.append(th);
}
const present = Object.keys(kinds);
if (present.length) {
  const legend = document.getElementById("legend");
  legend.append("Highlights: ");
  for (const k of present) {
    const mark = element("mark", kinds[k].label);
    mark.style.background = kinds[k].colour;
    legend.append(mark);
  }
  if (present.length > 1) {
    const mark = element("mark", "overlap (stripes)");
    mark.style.background = stripes(present);
    legend.append(mark);
  }
}
searchBox.addEventListener("input", () => { limit = batch; render(); });
more.addEventListener("click", () => { limit += batch; render(); });
document.getElementById("hint").hidden = !textKey;
render();
