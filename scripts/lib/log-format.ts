// Turns the services' output into readable terminal lines for `npm start`: a coloured
// `[name]` prefix per process, and pino JSON lines shortened to `time LEVEL msg key=value…`.
// Non-JSON lines (the Temporal server's) pass through unchanged.

const NAME_COLOURS: Record<string, number> = { temporal: 35, sandbox: 33, worker: 36, api: 32, start: 1 };
const LEVEL_NAMES: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};
const LEVEL_COLOURS: Record<string, number> = { trace: 2, debug: 2, info: 0, warn: 33, error: 31, fatal: 31 };
/** Shown by the prefix or the layout already, or noise at a terminal. */
const HIDDEN_KEYS = new Set(['level', 'time', 'msg', 'service', 'pid', 'hostname', 'v']);

export type Printer = (name: string, line: string) => void;

export function makePrinter(options: { colour: boolean; names: string[]; out?: NodeJS.WritableStream }): Printer {
  const width = Math.max(...options.names.map((n) => n.length)) + 2;
  const out = options.out ?? process.stdout;
  const paint = (code: number, text: string) => (options.colour && code ? `\x1b[${code}m${text}\x1b[0m` : text);
  return (name, line) => {
    const prefix = paint(NAME_COLOURS[name] ?? 0, `[${name}]`.padEnd(width));
    for (const shown of formatLine(line, paint).split('\n')) out.write(`${prefix} ${shown}\n`);
  };
}

function formatLine(line: string, paint: (code: number, text: string) => string): string {
  if (!line.startsWith('{')) return line;
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const level =
    typeof entry.level === 'number' ? (LEVEL_NAMES[entry.level] ?? String(entry.level)) : String(entry.level ?? 'info');
  const time = formatTime(entry.time);
  const fields: string[] = [];
  let stack = '';
  for (const [key, value] of Object.entries(entry)) {
    if (HIDDEN_KEYS.has(key) || value === undefined) continue;
    if (isError(value)) {
      fields.push(`${key}=${JSON.stringify(value.message)}`);
      // The stack is what a developer needs next, so show it, indented, below the line.
      if (value.stack) stack = `\n${value.stack.split('\n').slice(1).join('\n')}`;
      continue;
    }
    fields.push(`${key}=${typeof value === 'string' && /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value)}`);
  }
  const head = `${time} ${paint(LEVEL_COLOURS[level] ?? 0, level.toUpperCase().padEnd(5))} ${String(entry.msg ?? '')}`;
  return `${head}${fields.length ? ` ${paint(2, fields.join(' '))}` : ''}${stack}`;
}

function formatTime(time: unknown): string {
  const date = typeof time === 'number' || typeof time === 'string' ? new Date(time) : new Date();
  if (Number.isNaN(date.getTime())) return String(time);
  // Local wall-clock time: what the developer compares with their own clock.
  return `${date.toLocaleTimeString('en-GB', { hour12: false })}.${String(date.getMilliseconds()).padStart(3, '0')}`;
}

function isError(value: unknown): value is { message: string; stack?: string } {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { message?: unknown }).message === 'string' &&
    'stack' in value
  );
}
