// The one table of a `npm run bench` run (bench/RESULTS.md quotes it): each benchmark's headline
// numbers against its targets, as Markdown, written to <resultsDir>/summary.md.
import type { BenchResult } from './common';
import { verdict } from './common';

type Any = any; // result files are JSON; each benchmark documents its own shape

const ms = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? `${x} ms` : 'n/a');
const dist = (d: Any) => (d ? `p50 ${ms(d.p50)} · p95 ${ms(d.p95)} · p99 ${ms(d.p99)}` : 'n/a');

function rows(r: BenchResult): string[][] {
  const x = r.results as Any;
  const t = (what: string) => r.targets.find((tt) => tt.what.startsWith(what));
  const v = (what: string) => {
    const found = t(what);
    return found ? `${found.target}: **${verdict(found)}**` : '';
  };
  switch (r.benchmark) {
    case 'latency':
      return [
        ['1', '(a) floor: signed Pay to the sandbox (FpsClient)', dist(x.floorPay), ''],
        [
          '1',
          '  Temporal floor: no-op Update / + no-op local activity',
          `p50 ${ms(x.temporalNoopUpdate?.p50)} / ${ms(x.temporalLocalActivityUpdate?.p50)}`,
          '(diagnostic)',
        ],
        ['1', '(b) purchase Update via Temporal client', dist(x.workflowUpdate), ''],
        [
          '1',
          '(c) POST /instruments/:id/purchases',
          dist(x.apiPurchase),
          `p50 ≤ 25 ms: **${verdict(t('(c) API purchase p50')!)}**; p99 ≤ 100 ms: **${verdict(t('(c) API purchase p99')!)}**`,
        ],
        [
          '1',
          'ratios (b)/(a), (c)/(a) at p50 (p99)',
          `${x.ratios?.b_a?.p50} (${x.ratios?.b_a?.p99}), ${x.ratios?.c_a?.p50} (${x.ratios?.c_a?.p99})`,
          v('(c)/(a)'),
        ],
      ];
    case 'throughput': {
      const cpu = x.cpuMsPerPurchase ?? {};
      return [
        [
          '2',
          `purchases/s through the API (${r.settings.instruments} instruments, ${r.settings.clients} clients, ${r.settings.seconds} s)`,
          `**${x.purchasesPerSecond}/s** (${x.purchases} purchases, statuses ${JSON.stringify(x.statuses)})`,
          v('purchases/s'),
        ],
        ['2', 'latency under that load', dist(x.latencyMs), ''],
        [
          '2',
          'CPU ms per purchase (worker / Temporal / API / sandbox / load generator = total)',
          `${cpu.worker} / ${cpu.temporal ?? 'ext.'} / ${cpu.api} / ${cpu.sandbox} / ${cpu.bench} = ${cpu.total}; machine ${x.cpuUtilizationPercent} % busy (others: ${x.otherLoadPercent} %)`,
          '',
        ],
      ];
    }
    case 'old-account':
      return [
        [
          '3',
          `latency, purchases 1–${x.first?.n} vs the last ${x.last?.n} of ${x.purchasesDone}`,
          `${dist(x.first)} → ${dist(x.last)}; change p50 ${x.changePercent?.p50} %, mean ${x.changePercent?.mean} %`,
          v('p50 of purchases'),
        ],
        [
          '3',
          'continue-as-new runs; history per run',
          `${x.continueAsNewRuns} continue-as-new (${x.runs} runs); max ${x.historyEventsPerRun?.max} events, ${Math.round((x.historyBytesPerRun?.max ?? 0) / 1024)} KiB per run`,
          v('history per run'),
        ],
        [
          '3',
          'settlements on the way; purchases/s on one account',
          `${x.settlements} threshold settlements; ${x.purchasesPerSecond}/s with ${r.settings.clients} clients; statuses ${JSON.stringify(x.statuses)}`,
          v('every purchase'),
        ],
      ];
    case 'open-instruments':
      return [
        [
          '4',
          `${x.created} open instruments: time to start them`,
          `${x.startSeconds} s (${x.startedPerSecond}/s); all authorized after ${x.allActiveSeconds} s`,
          v('every instrument'),
        ],
        [
          '4',
          'worker RSS (peak) / Temporal server RSS (peak)',
          `${x.memoryMiB?.idle?.worker?.rssMiB} MiB (${x.memoryMiB?.idle?.worker?.peakMiB}) / ${x.memoryMiB?.idle?.temporal?.rssMiB ?? 'external'} MiB (${x.memoryMiB?.idle?.temporal?.peakMiB ?? '-'}); sticky cache ${(r.settings.worker as Any)?.maxCachedWorkflows}`,
          v('worker RSS'),
        ],
        ['4', 'a purchase on a random idle instrument afterwards', dist(x.idlePurchaseLatencyMs), ''],
      ];
    case 'sandbox':
      return [
        [
          '5',
          `sandbox Pay/s, ${x.concurrent?.concurrency} keep-alive clients / 1 client`,
          `**${x.concurrent?.requestsPerSecond}/s** (p50 ${ms(x.concurrent?.latencyMs?.p50)}, p99 ${ms(x.concurrent?.latencyMs?.p99)}) / ${x.single?.requestsPerSecond}/s (p50 ${ms(x.single?.latencyMs?.p50)}); ledger ${x.concurrent?.ledger?.ok && x.single?.ledger?.ok ? 'consistent' : 'INCONSISTENT'}`,
          '',
        ],
      ];
    default:
      return [];
  }
}

export function summaryMarkdown(results: BenchResult[]): string {
  const order = ['latency', 'throughput', 'old-account', 'open-instruments', 'sandbox'];
  const sorted = [...results].sort((a, b) => order.indexOf(a.benchmark) - order.indexOf(b.benchmark));
  const lines = ['| # | measure | result | target |', '|---|---|---|---|'];
  for (const r of sorted)
    for (const row of rows(r)) lines.push(`| ${row.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`);
  return `${lines.join('\n')}\n`;
}
