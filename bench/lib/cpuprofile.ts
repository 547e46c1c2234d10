/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by area (npm package, or the project's
 * own file), so a miss can be explained by what dominates.  npx tsx bench/lib/cpuprofile.ts <file> [top] [skip-ms]
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
export interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export function area(url: string): string {
  if (!url) return '(native/V8)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1).replace(/^file:\/\//, '');
  return url.replace(/^file:\/\//, '');
}

/**
 * skipMs: leave out the first milliseconds of the profile (start-up: module loading, migrations); untilMs: and
 * everything after this many ms from its start (shut-down), so a window of load can be summarised alone.
 */
export function summarizeProfile(p: Profile, top = 25, skipMs = 0, untilMs = Infinity) {
  const self = new Map<number, number>();
  let t = p.startTime;
  const from = p.startTime + skipMs * 1000;
  const to = p.startTime + untilMs * 1000;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (t < from || t > to) continue;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const byFn = new Map<string, number>();
  const byArea = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const f = n.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${area(f.url)}:${f.lineNumber + 1}`;
    byFn.set(key, (byFn.get(key) ?? 0) + us);
    const a =
      f.functionName === '(garbage collector)'
        ? '(garbage collector)'
        : f.functionName === '(idle)'
          ? '(idle)'
          : f.functionName === '(program)'
            ? '(program)'
            : area(f.url);
    byArea.set(a, (byArea.get(a) ?? 0) + us);
  }
  const idle = byArea.get('(idle)') ?? 0;
  const busy = total - idle;
  const rows = (m: Map<string, number>) =>
    [...m]
      .filter(([k]) => k !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => ({ name: k, ms: Math.round(us / 100) / 10, shareOfBusy: Math.round((us / busy) * 1000) / 10 }));
  return {
    wallMs: Math.round(Math.min(p.endTime - p.startTime, untilMs * 1000) / 1000 - skipMs),
    busyMs: Math.round(busy / 1000),
    byArea: rows(byArea),
    byFunction: rows(byFn),
  };
}

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: tsx bench/lib/cpuprofile.ts <file.cpuprofile> [top] [skip-ms]\n');
    process.exit(2);
  }
  const s = summarizeProfile(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(process.argv[3] ?? 25), Number(process.argv[4] ?? 0));
  process.stdout.write(`wall ${s.wallMs} ms, busy ${s.busyMs} ms\n\nby area (self time, % of busy):\n`);
  for (const r of s.byArea) process.stdout.write(`  ${String(r.shareOfBusy).padStart(5)}%  ${String(r.ms).padStart(8)} ms  ${r.name}\n`);
  process.stdout.write('\nby function:\n');
  for (const r of s.byFunction) process.stdout.write(`  ${String(r.shareOfBusy).padStart(5)}%  ${String(r.ms).padStart(8)} ms  ${r.name}\n`);
}
