// Where a V8 CPU profile (node --cpu-prof) spent its time: self time summed per function (name and
// source location) and per file or package. Usable alone: tsx bench/profile-top.ts file.cpuprofile [n]
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface TopEntry {
  name: string;
  where: string;
  selfMs: number;
  share: number;
}

const ROOT = process.cwd();

/** A short place: project-relative path, or the npm package, or the V8/Node category. */
function placeOf(url: string): string {
  if (!url) return '(native)';
  let p = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = p.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = p.slice(nm + 'node_modules/'.length).split('/');
    return `${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]} (${rest.slice(rest[0]!.startsWith('@') ? 2 : 1).join('/')})`;
  }
  if (p.startsWith(ROOT)) p = path.relative(ROOT, p);
  return p;
}

function pkgOf(url: string): string {
  if (!url) return '(native / V8 / GC)';
  const p = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = p.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = p.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (p.startsWith('node:')) return 'node (core)';
  if (p.startsWith(ROOT)) return path.relative(ROOT, p).split('/').slice(0, 2).join('/');
  return p;
}

export async function summarise(file: string, top = 25): Promise<{ totalMs: number; idleMs: number; functions: TopEntry[]; packages: TopEntry[] }> {
  const profile = JSON.parse(await fs.readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time since the previous sample; it is charged to sample i.
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, profile.timeDeltas[i] ?? 0));
  }
  const fns = new Map<string, TopEntry>();
  const pkgs = new Map<string, TopEntry>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    total += us;
    if (f.functionName === '(idle)') idle += us;
    const name = f.functionName || '(anonymous)';
    const where = f.url ? `${placeOf(f.url)}:${f.lineNumber + 1}` : '';
    const k = `${name}@${where}`;
    const e = fns.get(k) ?? { name, where, selfMs: 0, share: 0 };
    e.selfMs += us / 1000;
    fns.set(k, e);
    const pk = f.functionName === '(idle)' ? '(idle)' : f.functionName === '(garbage collector)' ? '(garbage collector)' : pkgOf(f.url);
    const p = pkgs.get(pk) ?? { name: pk, where: '', selfMs: 0, share: 0 };
    p.selfMs += us / 1000;
    pkgs.set(pk, p);
  }
  // Shares are of the busy time: idle is when the process waited (on PostgreSQL, on the network).
  const busy = (total - idle) / 1000;
  const rank = (m: Map<string, TopEntry>) =>
    [...m.values()]
      .filter((e) => e.name !== '(idle)')
      .map((e) => ({ ...e, share: busy > 0 ? e.selfMs / busy : 0 }))
      .sort((a, b) => b.selfMs - a.selfMs);
  return { totalMs: total / 1000, idleMs: idle / 1000, functions: rank(fns).slice(0, top), packages: rank(pkgs).slice(0, 15) };
}

export function formatSummary(s: Awaited<ReturnType<typeof summarise>>): string {
  const lines = [
    `profile: ${(s.totalMs / 1000).toFixed(1)} s sampled, ${((s.totalMs - s.idleMs) / 1000).toFixed(1)} s busy (${((1 - s.idleMs / s.totalMs) * 100).toFixed(0)}%); shares are of busy time`,
    '',
    '  self ms   share  function                                   where',
  ];
  for (const e of s.functions) {
    lines.push(`  ${e.selfMs.toFixed(0).padStart(7)}  ${(e.share * 100).toFixed(1).padStart(5)}%  ${e.name.slice(0, 42).padEnd(42)} ${e.where}`);
  }
  lines.push('', '  by package / folder:');
  for (const e of s.packages) lines.push(`  ${e.selfMs.toFixed(0).padStart(7)}  ${(e.share * 100).toFixed(1).padStart(5)}%  ${e.name}`);
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const [file, n] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: tsx bench/profile-top.ts <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  process.stdout.write(formatSummary(await summarise(file, n ? Number(n) : 25)) + '\n');
}
