// Line charts as standalone SVG files (no dependency: a few dozen lines of markup), for the
// pictures bench/RESULTS.md links to. Each series is a list of (x, y) points; axes start at 0.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { resultsDir, SMOKE } from './common';

export interface Series {
  name: string;
  points: Array<[number, number]>;
  /** Dashed line (e.g. the floor a series is compared with). */
  dashed?: boolean;
}

export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
const W = 760;
const H = 420;
const M = { left: 70, right: 20, top: 40, bottom: 90 };

/** A round step so that about `n` ticks cover 0..max. */
function tickStep(max: number, n = 6): number {
  const raw = max / n;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
}

const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function svgLineChart(chart: Chart): string {
  const all = chart.series.flatMap((s) => s.points);
  const xStep = tickStep(Math.max(...all.map((p) => p[0]), 1));
  const yStep = tickStep(Math.max(...all.map((p) => p[1]), 1));
  const xMax = Math.ceil(Math.max(...all.map((p) => p[0]), 1) / xStep) * xStep;
  const yMax = Math.ceil(Math.max(...all.map((p) => p[1]), 1) / yStep) * yStep;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const X = (x: number) => M.left + (x / xMax) * pw;
  const Y = (y: number) => M.top + ph - (y / yMax) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(chart.title)}</text>`,
  ];
  for (let x = 0; x <= xMax + 1e-9; x += xStep) {
    out.push(`<line x1="${X(x)}" y1="${M.top}" x2="${X(x)}" y2="${M.top + ph}" stroke="#eee"/>`);
    out.push(`<text x="${X(x)}" y="${M.top + ph + 16}" text-anchor="middle">${+x.toFixed(6)}</text>`);
  }
  for (let y = 0; y <= yMax + 1e-9; y += yStep) {
    out.push(`<line x1="${M.left}" y1="${Y(y)}" x2="${M.left + pw}" y2="${Y(y)}" stroke="#eee"/>`);
    out.push(`<text x="${M.left - 6}" y="${Y(y) + 4}" text-anchor="end">${+y.toFixed(6)}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  out.push(`<text x="${M.left + pw / 2}" y="${M.top + ph + 36}" text-anchor="middle">${esc(chart.xLabel)}</text>`);
  out.push(
    `<text transform="translate(16 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(chart.yLabel)}</text>`,
  );
  chart.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const d = s.points.map(([x, y], j) => `${j ? 'L' : 'M'}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ');
    out.push(
      `<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    for (const [x, y] of s.points)
      out.push(`<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="3" fill="${color}"/>`);
    const lx = M.left + (i % 3) * 240;
    const ly = H - 28 + Math.floor(i / 3) * 16;
    out.push(
      `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 24}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    out.push(`<text x="${lx + 30}" y="${ly}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/**
 * Writes a chart as `<name>.svg` into BENCH_CHARTS_DIR (default bench/charts, the pictures
 * RESULTS.md links to; a smoke run writes into its results directory instead). Returns the path.
 */
export function writeChart(name: string, chart: Chart): string {
  const dir =
    process.env.BENCH_CHARTS_DIR || (SMOKE ? path.join(resultsDir(), 'charts') : path.join(__dirname, '..', 'charts'));
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.svg`);
  writeFileSync(file, svgLineChart(chart));
  return file;
}
