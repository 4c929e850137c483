// Reads V8 .cpuprofile files (node --cpu-prof) and says where the time went inside a time window:
// self time by function and by "component" (a package under node_modules, a Node internal module,
// a project file, the GC, native code). Profiles use V8's monotonic clock in microseconds, the same
// CLOCK_MONOTONIC as process.hrtime() on Linux, so the window is the benchmark's own load phase
// (start-up, bundling and instrument creation are left out).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { config } from '../../config';
import { round } from './common';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export const monotonicMicros = () => Number(process.hrtime.bigint() / 1000n);

export interface Hotspot {
  name: string;
  /** Share of the thread's busy (non-idle) time in the window, percent. */
  percent: number;
  ms: number;
}

export interface ThreadProfile {
  file: string;
  /** Node's thread id from the file name: 0 is the main thread, others are worker_threads. */
  threadId: number;
  /** Sampled time in the window, ms (busy + idle). */
  windowMs: number;
  /** Non-idle sampled time, ms. */
  busyMs: number;
  /** Busy ms by component (package, Node module, project file, GC, ...). */
  components: Hotspot[];
  /** Busy ms by function (self time). */
  functions: Hotspot[];
  /** Busy ms by the innermost project frame on the stack: the call site in our code that caused it. */
  projectInclusive: Hotspot[];
}

const root = config().root;

/** What a frame belongs to: `pkg:<name>`, `node:<module>`, a project path, or a V8 pseudo-frame. */
export function componentOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName.startsWith('(')) return functionName; // (garbage collector), (program), (idle), (root)
    return `native:${functionName || 'anonymous'}`;
  }
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return `pkg:${rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (url.startsWith('node:')) {
    const m = url
      .slice(5)
      .replace(/^internal\/(deps\/)?/, '')
      .split('/');
    return `node:${m[0].replace(/\.js$/, '')}`;
  }
  let file = url.replace(/^file:\/\//, '');
  if (file.startsWith(root)) file = path.relative(root, file);
  // The workflow bundle is one webpack file evaluated in a vm context.
  if (/workflow-bundle|webpack/.test(file)) return 'workflow-bundle';
  return file;
}

// Project files run through tsx's transform, whose line numbers say nothing: name them by file only.
const frameName = (f: CallFrame) => {
  const c = componentOf(f);
  const line = f.url && !f.url.startsWith('node:') && !f.url.endsWith('.ts') ? `:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'} ${c}${line}`;
};

const isProjectFile = (component: string) =>
  /^(api|workflows|activities|worker|fps|sandbox|machines|config)\//.test(component);

function top(map: Map<string, number>, busy: number, n: number): Hotspot[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, us]) => ({ name, ms: round(us / 1000, 1), percent: round((100 * us) / (busy || 1), 1) }));
}

/** Self time per function and component within [fromMicros, toMicros] (monotonic µs). */
export function analyzeProfile(file: string, fromMicros = -Infinity, toMicros = Infinity, n = 15): ThreadProfile {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  // The innermost project frame of each node's stack (cached per node): who in our code asked for it.
  const projectFrame = new Map<number, string | null>();
  const projectOf = (id: number): string | null => {
    if (projectFrame.has(id)) return projectFrame.get(id)!;
    const node = byId.get(id)!;
    const here = isProjectFile(componentOf(node.callFrame)) ? frameName(node.callFrame) : null;
    const up = parent.has(id) ? projectOf(parent.get(id)!) : null;
    const result = here ?? up;
    projectFrame.set(id, result);
    return result;
  };

  const components = new Map<string, number>();
  const functions = new Map<string, number>();
  const project = new Map<string, number>();
  let t = profile.startTime;
  let windowUs = 0;
  let busyUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    // A sample's weight is the time until the next one.
    const weight = i + 1 < profile.timeDeltas.length ? profile.timeDeltas[i + 1] : 0;
    if (t < fromMicros || t > toMicros || weight <= 0) continue;
    windowUs += weight;
    const node = byId.get(profile.samples[i]);
    if (!node) continue;
    const c = componentOf(node.callFrame);
    if (c === '(idle)') continue;
    busyUs += weight;
    components.set(c, (components.get(c) ?? 0) + weight);
    const f = frameName(node.callFrame);
    functions.set(f, (functions.get(f) ?? 0) + weight);
    const p = projectOf(node.id);
    if (p) project.set(p, (project.get(p) ?? 0) + weight);
  }
  return {
    file: path.basename(file),
    threadId: Number(path.basename(file).split('.')[4] ?? 0),
    windowMs: round(windowUs / 1000, 1),
    busyMs: round(busyUs / 1000, 1),
    components: top(components, busyUs, n),
    functions: top(functions, busyUs, n),
    projectInclusive: top(project, busyUs, n),
  };
}
