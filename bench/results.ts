// The report: per-round ratios (each from two slices run back to back) with their median and
// min–max, each target's PASS/MISS on the median, the CPU µs per request of both sides, the printed
// tables, and bench/RESULTS.md (the latest run in full, one history line per run kept).
import fs from 'node:fs/promises';
import type { LoadResult } from './load.js';
import type { RowSpec, RunDef } from './scenarios.js';

/** One measured slice: the load's figures, CPU µs per request (server, PostgreSQL, the rest), the wait for the background to catch up. */
export interface Measured extends LoadResult {
  cpu: { server: number; pg: number; rest: number };
  drainS: number;
  /** Requests ÷ (the load's seconds + the seconds until the background work they caused was done). */
  sustainedRps: number;
}

export interface Figures {
  rps: number;
  p50ms: number;
  p99ms: number;
  bad: number;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

export interface Row {
  endpoint: string;
  kyclo: Figures | null;
  baselineName: string;
  baseline: Figures | null;
  /** The per-round ratios (each from slices run back to back): median and min–max. */
  ratio: Spread | null;
  /** Shown instead of the ratio where the target is an absolute figure (e.g. "212 MB"). */
  measured?: string;
  target: string;
  pass: boolean | null;
  /** The short name in the history line. */
  short?: string;
}

export const median = (xs: number[]) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const spread = (xs: number[]): Spread | null => (xs.length ? { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length } : null);

export function figuresOf(runs: LoadResult[]): Figures | null {
  if (runs.length === 0) return null;
  return {
    rps: median(runs.map((r) => r.rps)),
    p50ms: median(runs.map((r) => r.p50ms)),
    p99ms: median(runs.map((r) => r.p99ms)),
    bad: runs.reduce((s, r) => s + r.bad, 0),
  };
}

/** The sustained rate (load and catch-up); no latency of its own. */
const sustainedOf = (xs: Measured[]): Figures | null => (xs.length ? { rps: median(xs.map((x) => x.sustainedRps)), p50ms: NaN, p99ms: NaN, bad: 0 } : null);

/** Medians, per-round ratios with their spread, and target verdicts (on the median). */
export function report(specs: RowSpec[], results: Map<string, Measured[]>, rssMax: number): Row[] {
  const rows: Row[] = [];
  for (const s of specs) {
    const k = results.get(s.kyclo) ?? [];
    const b = s.against ? (results.get(s.against) ?? []) : [];
    const perRound = (f: (kr: Measured, br: Measured) => number) => spread(k.flatMap((kr, i) => (b[i] ? [f(kr, b[i]!)] : [])));
    let ratio: Spread | null = null;
    let pass: boolean | null = null;
    let measured: string | undefined;
    if (s.kind === 'rps' || s.kind === 'info') {
      ratio = s.against ? perRound((kr, br) => kr.rps / br.rps) : null;
      if (s.kind === 'rps') pass = ratio !== null && ratio.median >= s.threshold!;
    } else if (s.kind === 'sustained') {
      ratio = perRound((kr, br) => kr.sustainedRps / br.sustainedRps);
    } else if (s.kind === 'p50') {
      ratio = perRound((kr, br) => kr.p50ms / br.p50ms);
      pass = ratio !== null && ratio.median <= s.threshold!;
    } else if (s.kind === 'pgcpu') {
      ratio = perRound((kr, br) => kr.cpu.pg / br.cpu.pg);
      pass = ratio !== null && ratio.median <= s.threshold!;
      measured = `${median(k.map((x) => x.cpu.pg)).toFixed(0)} vs ${median(b.map((x) => x.cpu.pg)).toFixed(0)} µs`;
    } else if (s.kind === 'p99abs') {
      const p99 = spread(k.map((x) => x.p99ms));
      pass = p99 !== null && p99.median <= s.threshold!;
      if (p99) measured = `${ms(p99.median)} ms (${ms(p99.min)}–${ms(p99.max)})`;
    }
    const bad = k.reduce((n, x) => n + x.bad, 0) + b.reduce((n, x) => n + x.bad, 0);
    const figures = (xs: Measured[]) => (s.kind === 'pgcpu' ? null : s.kind === 'sustained' ? sustainedOf(xs) : figuresOf(xs));
    rows.push({
      endpoint: s.endpoint, short: s.short, kyclo: figures(k), baselineName: s.againstName ?? '—',
      baseline: figures(b), ratio, measured, target: s.target, pass: pass === null ? null : pass && bad === 0,
    });
  }
  if (results.size && [...results.keys()].some((id) => id.startsWith('kyclo'))) {
    rows.push({
      endpoint: 'server memory under load (max RSS)', short: 'rss', kyclo: null, baselineName: '—', baseline: null, ratio: null,
      measured: `${rssMax.toFixed(0)} MB`, target: 'RSS ≤ 250 MB', pass: rssMax <= 250,
    });
  }
  return rows;
}

/** CPU µs per request of each run (medians of its slices): the server process, PostgreSQL, the rest of the machine. */
export function cpuTable(runs: RunDef[], results: Map<string, Measured[]>): { text: string; markdown: string } {
  const head = ['run', 'req/s (load)', 'server µs/req', 'PostgreSQL µs/req', 'rest µs/req', 'total µs/req', 'background caught up after (s)'];
  const body = runs
    .filter((d) => results.has(d.id))
    .map((d) => {
      const m = results.get(d.id)!;
      const c = { server: median(m.map((x) => x.cpu.server)), pg: median(m.map((x) => x.cpu.pg)), rest: median(m.map((x) => x.cpu.rest)) };
      return [d.label, median(m.map((x) => x.rps)).toFixed(0), c.server.toFixed(0), c.pg.toFixed(0), c.rest.toFixed(0), (c.server + c.pg + c.rest).toFixed(0), median(m.map((x) => x.drainS)).toFixed(1)];
    });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return {
    text: [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n'),
    markdown: [`| ${head.join(' | ')} |`, `|---|${head.slice(1).map(() => '--:').join('|')}|`, ...body.map((b) => `| ${b.join(' | ')} |`)].join('\n'),
  };
}

const num = (v: number | undefined | null, digits = 0) => (v === undefined || v === null || Number.isNaN(v) ? '–' : v.toFixed(digits));
const ms = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '–' : v < 10 ? v.toFixed(2) : v.toFixed(1));
const ratioText = (r: Row) => r.measured ?? (r.ratio ? num(r.ratio.median, 2) : '–');
const spreadText = (r: Row) => (r.ratio && r.ratio.n > 1 ? `${num(r.ratio.min, 2)}–${num(r.ratio.max, 2)}` : '–');
const verdict = (r: Row) => {
  const bad = (r.kyclo?.bad ?? 0) + (r.baseline?.bad ?? 0);
  const base = r.pass === null ? 'info' : r.pass ? 'PASS' : 'MISS';
  return bad ? `${base} (${bad} non-2xx/errors!)` : base;
};

const HEAD = ['Kyclo endpoint', 'req/s', 'p50 ms', 'p99 ms', 'against', 'req/s', 'p50 ms', 'p99 ms', 'ratio (median)', 'min–max', 'target', 'result'];
const cells = (r: Row) => [
  r.endpoint, num(r.kyclo?.rps), ms(r.kyclo?.p50ms), ms(r.kyclo?.p99ms), r.baselineName, num(r.baseline?.rps), ms(r.baseline?.p50ms),
  ms(r.baseline?.p99ms), ratioText(r), spreadText(r), r.target, verdict(r),
];

export function markdownTable(rows: Row[]): string {
  return [`| ${HEAD.join(' | ')} |`, '|---|--:|--:|--:|---|--:|--:|--:|--:|--:|---|---|', ...rows.map((r) => `| ${cells(r).join(' | ')} |`)].join('\n');
}

/** A fixed-width table for the terminal. */
export function textTable(rows: Row[]): string {
  const body = rows.map(cells);
  const widths = HEAD.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const right = new Set([1, 2, 3, 5, 6, 7, 8, 9]);
  const line = (c: string[]) => c.map((x, i) => (right.has(i) ? x.padStart(widths[i]!) : x.padEnd(widths[i]!))).join('  ');
  return [line(HEAD), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export interface RunInfo {
  date: string;
  machine: string;
  command: string;
  commit: string;
  settings: string[];
  seeding: string;
  durationS: number;
}

const HISTORY_HEADER =
  '| date | commit | GET | caps | PATCH | PATCH vs floor | PATCH sustained | POST | POST sustained | list | deep p50× | q p99 ms | pg µs PATCH | pg µs POST | RSS MB | misses | run s | PATCH +hooks | POST +hooks | import ×COPY | import rows/s | export users/s |';
const HISTORY_RULE = '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|';

export function historyLine(info: RunInfo, rows: Row[]): string {
  const by = (s: string) => rows.find((r) => r.short === s);
  const ratio = (s: string) => {
    const r = by(s)?.ratio;
    return r ? `${num(r.median, 2)} (${num(r.min, 2)}–${num(r.max, 2)})` : '–';
  };
  const misses = rows.filter((r) => r.pass === false).map((r) => r.short ?? r.endpoint);
  return (
    `| ${info.date.slice(0, 16).replace('T', ' ')} | ${info.commit} | ${ratio('get')} | ${ratio('caps')} | ${ratio('patch')} | ${ratio('patch_floor')} | ` +
    `${ratio('patch_sustained')} | ${ratio('post')} | ${ratio('post_sustained')} | ${ratio('list')} | ${ratio('deep')} | ${by('q')?.measured ?? '–'} | ${by('patch_pg')?.measured ?? '–'} | ${by('post_pg')?.measured ?? '–'} | ` +
    `${by('rss')?.measured ?? '–'} | ${misses.join(', ') || 'none'} | ${num(info.durationS)} | ${ratio('patch_hooks')} | ${ratio('post_hooks')} | ` +
    `${ratio('import')} | ${by('import_rate')?.measured ?? '–'} | ${by('export')?.measured?.split(' (')[0] ?? '–'} |`
  );
}

// Runs made before issue 14 compared Kyclo, with its background work off, against baselines that did
// less than it or more: they are kept as they were, apart, and are not comparable with the lines above.
const OLD_HISTORY = '## Earlier runs, against the old baselines (not comparable)';

export async function writeResults(file: string, info: RunInfo, rows: Row[], cpuMarkdown: string): Promise<void> {
  const old = await fs.readFile(file, 'utf8').catch(() => '');
  const at = old.indexOf('## History');
  const oldAt = old.indexOf(OLD_HISTORY);
  const kept = at >= 0 ? old.slice(at, oldAt >= 0 ? oldAt : undefined).split('\n').filter((l) => l.startsWith('| 2')) : [];
  const frozen = oldAt >= 0 ? old.slice(oldAt).trimEnd() : '';
  const text = [
    '# Benchmark results',
    '',
    'Written by `npm run bench` (bench/run.ts). The table is the latest run; the history keeps one line per run, so a',
    'regression shows as a falling ratio. Each ratio is Kyclo ÷ its baseline per round (two slices run back to back),',
    'shown as the median of the rounds and their min–max; a target passes only when the median meets it. See',
    'bench/README.md for what each figure means and for the SQL of both sides.',
    '',
    '## Latest run',
    '',
    `- Date: ${info.date}`,
    `- Machine: ${info.machine}`,
    `- Command: \`${info.command}\``,
    `- Commit: ${info.commit}`,
    `- Seeding: ${info.seeding}`,
    ...info.settings.map((s) => `- ${s}`),
    `- Whole run: ${num(info.durationS)} s`,
    '',
    markdownTable(rows),
    '',
    'CPU per request (medians of the slices; Kyclo\'s include its background work until it caught up):',
    '',
    cpuMarkdown,
    '',
    '## History',
    '',
    'Until 2026-11-30 12:00 (80633b6), PATCH and POST were measured with one webhook endpoint per written tenant: those',
    'lines compare with the +hooks columns. Since then the target rows run as `npm start` does (no endpoint; sealing and',
    'fan-out still run) and the +hooks columns show the same writes each delivering a signed webhook (bench/README.md).',
    '',
    HISTORY_HEADER,
    HISTORY_RULE,
    ...kept,
    historyLine(info, rows),
    '',
    ...(frozen ? [frozen, ''] : []),
  ].join('\n');
  await fs.writeFile(file, text);
}
