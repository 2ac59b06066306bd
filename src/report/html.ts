/**
 * The report as one self-contained page (`report/index.html`) a colleague can open offline: Vega,
 * Vega-Lite and vega-embed are inlined from node_modules (no CDN), the figures are live (tooltips
 * with every metric and its CI, legend entries that highlight a series, budgets on a log axis), a
 * selector shows one block at a time, every table sorts by the header clicked, and the run's
 * manifest (command, versions, backend, git commit) and a link to its CSV sit at the top.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Report, Section } from './report.js';

const require = createRequire(import.meta.url);

/** The browser builds, read once from the installed packages. */
let libraries: string | undefined;
function inlineLibraries(): string {
  if (libraries === undefined) {
    const file = (pkg: string, rel: string) => readFileSync(path.join(packageDir(pkg), rel), 'utf8');
    libraries = [
      file('vega', 'build/vega.min.js'),
      file('vega-lite', 'build/vega-lite.min.js'),
      file('vega-embed', 'build/vega-embed.min.js'),
    ]
      .map((src) => `<script>${scriptSafe(src)}</script>`)
      .join('\n');
  }
  return libraries;
}

/** An installed package's folder (vega's `exports` hide its package.json and builds from require.resolve). */
function packageDir(pkg: string): string {
  for (const dir of require.resolve.paths(pkg) ?? []) {
    const candidate = path.join(dir, pkg);
    if (existsSync(path.join(candidate, 'package.json'))) return candidate;
  }
  throw new Error(`${pkg} is not installed (the report page inlines its browser build)`);
}

/** Text inside <script> must not close the element early. */
const scriptSafe = (s: string) => s.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Inline `code` spans of the report's prose as <code>. */
const prose = (s: string) => esc(s).replace(/`([^`]+)`/g, '<code>$1</code>');

export interface HtmlOptions {
  /** the run's manifest.json, shown as the page's provenance */
  manifest?: unknown;
  /** where the results CSV is, relative to the page */
  csvHref?: string;
  title?: string;
  /** several runs' provenance (a comparison), each under its label, instead of manifest/csvHref */
  runs?: Array<{ label: string; manifest?: unknown; csvHref?: string }>;
  /** why the manifest beside the CSV could not be used, for the page */
  manifestProblem?: string;
}

const STYLE = `
body { font: 14px/1.45 'DejaVu Sans', Arial, sans-serif; margin: 0 auto; max-width: 1180px; padding: 0 20px 40px; color: #222; }
header { border-bottom: 1px solid #ddd; padding: 8px 0; }
h1 { font-size: 22px; margin: 10px 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
nav { display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
table { border-collapse: collapse; margin: 8px 0 12px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; cursor: pointer; user-select: none; position: relative; padding-right: 18px; }
th[aria-sort=ascending]::after { content: '▲'; position: absolute; right: 4px; font-size: 9px; }
th[aria-sort=descending]::after { content: '▼'; position: absolute; right: 4px; font-size: 9px; }
td.text, th.text { text-align: left; }
tr.pareto td { background: #fffbe6; }
.figure { margin: 8px 0 4px; } .caption { color: #555; font-size: 13px; max-width: 760px; }
details.manifest { margin: 8px 0; } details.manifest pre { background: #f7f7f7; padding: 8px; overflow: auto; max-height: 320px; }
dl.manifest { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0; }
dl.manifest dt { color: #555; } dl.manifest dd { margin: 0; font-family: monospace; word-break: break-all; }
.wrap { overflow-x: auto; }
`;

/** Sorting, the block selector and the figures: plain DOM, no framework. */
const SCRIPT = `
(function () {
  var specs = JSON.parse(document.getElementById('mse-specs').textContent);
  Object.keys(specs).forEach(function (id) {
    vegaEmbed('#' + id, specs[id], {
      renderer: 'svg',
      actions: { export: true, source: false, compiled: false, editor: false },
    }).catch(function (e) { console.error('figure ' + id + ': ' + e.message); });
  });
  var select = document.getElementById('block');
  var show = function () {
    var v = select.value;
    document.querySelectorAll('section.block').forEach(function (s) {
      s.hidden = v !== 'all' && v !== 'g:' + s.dataset.group && v !== 's:' + s.id;
    });
  };
  select.addEventListener('change', show);
  show(); // a reload may restore the selector's last choice
  var num = function (s) {
    var m = /^[-+]?[0-9.,]+(e-?[0-9]+)?/.exec(s.trim());
    return m ? Number(m[0].replace(/,/g, '')) : NaN;
  };
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.querySelectorAll('th');
    heads.forEach(function (th, col) {
      th.addEventListener('click', function () {
        var dir = th.getAttribute('aria-sort') === 'ascending' ? 'descending' : 'ascending';
        heads.forEach(function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', dir);
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].textContent, y = b.cells[col].textContent;
          var nx = num(x), ny = num(y), c;
          var bx = x.trim() === '' || x.trim() === '–', by = y.trim() === '' || y.trim() === '–';
          if (bx !== by) return bx ? 1 : -1; // blanks and dashes last, whichever the direction
          if (!isNaN(nx) && !isNaN(ny)) c = nx - ny;
          else if (isNaN(nx) !== isNaN(ny)) c = isNaN(nx) ? 1 : -1;
          else c = x.localeCompare(y, 'en', { numeric: true });
          return dir === 'ascending' ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
`;

function tableHtml(s: Section): string {
  if (!s.table) return '';
  const pareto = s.table.header.indexOf('Pareto');
  // numbers right-aligned, words left
  const numeric = s.table.header.map((_, c) =>
    s.table!.rows.every((r) => /^([-+]?[0-9.,]+(e-?[0-9]+)?( ± .*)?|–|)$/.test(r[c] ?? '')),
  );
  const cls = (c: number) => (numeric[c] ? '' : ' class="text"');
  const head = s.table.header.map((h, c) => `<th scope="col"${cls(c)}>${esc(h)}</th>`).join('');
  const body = s.table.rows
    .map(
      (r) =>
        `<tr${pareto >= 0 && r[pareto] === '★' ? ' class="pareto"' : ''}>${r.map((c, i) => `<td${cls(i)}>${esc(c)}</td>`).join('')}</tr>`,
    )
    .join('\n');
  return `<div class="wrap"><table class="sortable"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isText = (v: unknown): v is string => typeof v === 'string';

/** A relative link with each path segment percent-encoded (a run named `a#b` is a directory, not a fragment). */
export const hrefOf = (rel: string) => rel.split('/').map(encodeURIComponent).join('/');

/**
 * The provenance block: the manifest's fields that have the types mse writes (anything else is
 * left out, not printed as "[object Object]"), then the whole file folded.
 */
function manifestHtml(manifest: unknown, csvHref: string | undefined, problem?: string): string {
  const m = isRecord(manifest) ? manifest : {};
  const items: Array<[string, string]> = [];
  if (Array.isArray(m.command) && m.command.every(isText))
    items.push(['command', ['mse', ...m.command.slice(1)].join(' ')]);
  if (isText(m.created)) items.push(['created', m.created]);
  if (isText(m.git_commit)) items.push(['git commit', m.git_commit]);
  const b = m.backend;
  if (isRecord(b) && isText(b.label))
    items.push([
      'backend',
      `${b.label}${isText(b.tf_backend) ? ` (tf.getBackend() = ${b.tf_backend}${typeof b.threads === 'number' ? `, ${b.threads} threads` : ''})` : ''}`,
    ]);
  const v = m.versions;
  if (isRecord(v) && Object.values(v).every(isText))
    items.push([
      'versions',
      Object.entries(v)
        .map(([k, x]) => `${k} ${String(x)}`)
        .join(', '),
    ]);
  const list = items.map(([k, x]) => `<dt>${esc(k)}</dt><dd>${esc(x)}</dd>`).join('');
  const link = csvHref ? `<dt>results</dt><dd><a href="${esc(hrefOf(csvHref))}">${esc(csvHref)}</a></dd>` : '';
  const full = isRecord(manifest)
    ? `<details class="manifest"><summary>manifest.json</summary><pre>${esc(JSON.stringify(manifest, null, 2))}</pre></details>`
    : `<p class="caption">${esc(problem ?? 'No manifest.json beside the CSV')}: provenance unknown.</p>`;
  return `<dl class="manifest">${list}${link}</dl>${full}`;
}

/** The whole page. Figures are Vega-Lite specs embedded as JSON, drawn in the browser. */
export function renderHtml(report: Report, opts: HtmlOptions = {}): string {
  const specs: Record<string, unknown> = {};
  const groups = [...new Set(report.sections.map((s) => s.group))];
  const sections = report.sections
    .map((s) => {
      const figs = s.figures
        .map((f) => {
          const id = `fig-${f.name}`;
          specs[id] = { ...(f.spec as object), width: 'container', autosize: { type: 'fit-x', contains: 'padding' } };
          return `<div class="figure" id="${esc(id)}" style="width:min(760px,100%)"></div>${f.caption ? `<p class="caption">${prose(f.caption)}</p>` : ''}`;
        })
        .join('\n');
      return `<section class="block" id="${esc(s.id)}" data-group="${esc(s.group)}">
<h2>${esc(s.title)}</h2>
${s.text.map((t) => `<p>${prose(t)}</p>`).join('\n')}
${tableHtml(s)}
${figs}
${(s.after ?? []).map((t) => `<p class="caption">${prose(t)}</p>`).join('\n')}
</section>`;
    })
    .join('\n');
  const title = opts.title ?? 'mse report';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${STYLE}</style>
${inlineLibraries()}
</head>
<body>
<header>
<h1>${esc(title)}</h1>
<nav><label>Show <select id="block"><option value="all">every block</option>${groups
    .map((g) => {
      const own = report.sections.filter((s) => s.group === g);
      return `<optgroup label="${esc(g)}">${own.length > 1 ? `<option value="g:${esc(g)}">${esc(g)}: all</option>` : ''}${own
        .map((s) => `<option value="s:${esc(s.id)}">${esc(s.title)}</option>`)
        .join('')}</optgroup>`;
    })
    .join('')}</select></label>${opts.csvHref ? `<a href="${esc(hrefOf(opts.csvHref))}">results.csv</a>` : ''}</nav>
</header>
<p>${prose(report.intro)} Click a column header to sort; click a legend entry to highlight a series (shift-click for more); hover a point for every metric.</p>
${
  opts.runs
    ? opts.runs.map((r) => `<h3>${esc(r.label)}</h3>${manifestHtml(r.manifest, r.csvHref)}`).join('\n')
    : manifestHtml(opts.manifest, opts.csvHref, opts.manifestProblem)
}
${sections}
<script type="application/json" id="mse-specs">${JSON.stringify(specs).replace(/</g, '\\u003c')}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
