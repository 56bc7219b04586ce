// The measured processes: Kyclo as deployed — `npm start`'s node dist/cli/main.js serve with the same
// heap ceiling and its default configuration, background work included (the audit sealer, checkpoint
// signing, webhook fan-out and delivery run in the server process, so their CPU is the server's) —
// spawned directly so its pid is the server's own; the bare baseline, compiled with tsc like Kyclo;
// and the webhook receiver Kyclo delivers to. Each is stopped with SIGINT and waited for, so a
// --cpu-prof profile is written.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../src/db/embedded.js';

export interface Running {
  name: string;
  pid: number;
  base: string;
  stop(): Promise<void>;
}

async function waitHealthy(name: string, base: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}: ${stderr().trim()}`);
    const ok = await fetch(`${base}/healthz`).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${name} did not answer /healthz within 60 s: ${stderr().trim()}`);
}

async function start(name: string, args: string[], env: NodeJS.ProcessEnv, cwd: string, logFile: string | null): Promise<Running> {
  const port = await freePort();
  const out = fs.openSync(logFile ?? '/dev/null', 'w');
  const child = spawn(process.execPath, args, { cwd, env: { ...env, PORT: String(port) }, stdio: ['ignore', out, 'pipe'] });
  fs.closeSync(out);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitHealthy(name, base, child, () => err);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stopping: Promise<void> | null = null;
  return {
    name,
    pid: child.pid!,
    base,
    stop: () =>
      (stopping ??= (async () => {
        if (child.exitCode !== null) return;
        child.kill('SIGINT');
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(timer);
      })()),
  };
}

export interface KycloOptions {
  root: string;
  databaseUrl: string;
  masterKey: string;
  logLevel: string;
  dataDir: string;
  /**
   * Write V8 CPU profiles into this directory when the server stops (one per thread: tsx's module
   * loader runs on a thread of its own; mainProfile() picks the main thread's).
   */
  profileDir?: string;
}

/**
 * Kyclo runs as `npm start` runs it: the compiled build (run.ts builds it first) with the same heap
 * ceiling. Keep these in step with the start script in package.json and HEAP_FLAG in bin/kyclo.js.
 */
export const KYCLO_NODE_FLAGS = ['--max-old-space-size=256'];

export async function startKyclo(o: KycloOptions): Promise<Running> {
  const prof = o.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${o.profileDir}`] : [];
  if (o.profileDir) await fsp.mkdir(o.profileDir, { recursive: true });
  const quiet = ['silent', 'fatal', 'error', 'warn'].includes(o.logLevel);
  return start(
    'kyclo',
    [...prof, ...KYCLO_NODE_FLAGS, 'dist/cli/main.js', 'serve'],
    {
      ...process.env,
      DATABASE_URL: o.databaseUrl,
      KYCLO_MASTER_KEY: o.masterKey,
      HOST: '127.0.0.1',
      LOG_LEVEL: o.logLevel,
      // The default: background work (webhook fan-out and delivery, audit sealing and checkpoints,
      // retention) runs in this process, and its CPU is counted with the requests'.
      KYCLO_SERVE_WORKERS: 'true',
      // The only settings changed from the defaults: the bench's webhook receiver listens on
      // http://127.0.0.1, which the SSRF guard refuses unless told otherwise.
      KYCLO_WEBHOOKS_ALLOW_HTTP: 'true',
      KYCLO_WEBHOOKS_ALLOW_PRIVATE: 'true',
      KYCLO_DATA_DIR: o.dataDir,
      REDIS_URL: '',
      KYCLO_TRUSTED_PROXIES: '',
    },
    o.root,
    // Request logs at info and below are millions of lines: they go to /dev/null, warnings to a file.
    quiet ? path.join(o.dataDir, 'kyclo.log') : null,
  );
}

/** Where `buildBaseline` writes the compiled baseline (bench/tsconfig.baseline.json). */
const BASELINE_JS = path.join('scratch', 'bench', 'baseline-dist', 'bench', 'baseline.js');

/** Compiles bench/baseline.ts (and the few src modules it imports) with tsc, as `npm run build` compiles Kyclo. */
export function buildBaseline(root: string): void {
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'bench', 'tsconfig.baseline.json')], {
    cwd: root, stdio: 'inherit',
  });
}

export async function startBaseline(o: { root: string; databaseUrl: string; tenantId: string; writeTenantId: string; profileDir?: string }): Promise<Running> {
  if (o.profileDir) await fsp.mkdir(o.profileDir, { recursive: true });
  return start(
    'baseline',
    [...(o.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${o.profileDir}`] : []), BASELINE_JS],
    { ...process.env, BENCH_DATABASE_URL: o.databaseUrl, BENCH_TENANT_ID: o.tenantId, BENCH_WRITE_TENANT_ID: o.writeTenantId },
    o.root,
    null,
  );
}

// The webhook receiver: answers every delivery 204 at once, and counts them. A process of its own, so
// its CPU (what a customer's endpoint spends) is not the server's; it counts as the rest of the machine.
const RECEIVER = `
const http = require('node:http');
let n = 0;
const server = http.createServer((req, res) => { req.resume(); req.on('end', () => { n++; res.writeHead(204).end(); }); });
server.listen(0, '127.0.0.1', () => process.stdout.write('listening ' + server.address().port + '\\n'));
process.on('SIGINT', () => { process.stdout.write('received ' + n + '\\n'); server.close(); process.exit(0); });
`;

export interface Receiver {
  pid: number;
  url: string;
  stop(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const child = spawn(process.execPath, ['-e', RECEIVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`the webhook receiver exited with ${code}`)));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    pid: child.pid!,
    url: `http://127.0.0.1:${port}/webhooks`,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGINT');
      await exited;
    },
  };
}

/** Resident memory of a process, from /proc (Linux): now and its peak. */
export function rssOf(pid: number): { rssMb: number; hwmMb: number } | null {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
  } catch {
    return null;
  }
}

/**
 * CPU time (user + system, ms) of one process and all its threads, from /proc/<pid>/stat; with
 * `reaped`, also that of its children that have exited. 0 when it is gone.
 */
export function cpuMsOf(pid: number, { reaped = false } = {}): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number); // after "pid (comm) "
    const ticks = f[11]! + f[12]! + (reaped ? f[13]! + f[14]! : 0); // utime, stime, cutime, cstime
    return (ticks * 1000) / TICKS_PER_S;
  } catch {
    return 0;
  }
}
const TICKS_PER_S = 100; // USER_HZ on Linux

/**
 * CPU time (ms) of every process named `postgres`, with what exited backends used (the postmaster
 * reaps them, so it is in the postmaster's children time): a backend the pool closes mid-run still counts.
 */
export function postgresCpuMs(): number {
  let total = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'postgres') total += cpuMsOf(Number(entry), { reaped: true });
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** CPU time (ms) the whole machine spent busy, all cores, from /proc/stat. */
export function machineBusyMs(): number {
  const [, ...ticks] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0); // idle, iowait
  return ((ticks.reduce((a, b) => a + b, 0) - idle) * 1000) / TICKS_PER_S;
}

/** The main thread's profile in a --cpu-prof directory: CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile, thread 0. */
export async function mainProfile(dir: string): Promise<string> {
  const files = (await fsp.readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  const main = files.find((f) => f.split('.').at(-3) === '0') ?? files[0];
  if (!main) throw new Error(`no .cpuprofile written in ${dir}`);
  return path.join(dir, main);
}
