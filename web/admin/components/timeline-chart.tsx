import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { Timeline } from '../types.ts';

const LAG_COLOURS = ['#1d4ed8', '#7c3aed', '#0e7490', '#b45309', '#be185d', '#4d7c0f'];
const SNAPSHOT_OK = '#15803d';
const SNAPSHOT_FAILED = '#b91c1c';
const HEIGHT = 260;

/** The chart's columns: one time axis shared by snapshot markers and one lag line per source and target. */
export function timelineData(timeline: Timeline): { series: uPlot.Series[]; data: uPlot.AlignedData } {
  const seconds = (iso: string) => Math.round(Date.parse(iso) / 1000);
  const times = [
    ...new Set([...timeline.snapshots.map((s) => seconds(s.at)), ...timeline.lag.map((l) => seconds(l.at))]),
  ].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const column = () => times.map((): number | null => null);

  const lagColumns = new Map<string, Array<number | null>>();
  for (const sample of timeline.lag) {
    const name = `${sample.source} → ${sample.target}`;
    const values = lagColumns.get(name) ?? column();
    lagColumns.set(name, values);
    values[index.get(seconds(sample.at))!] = sample.lagSeconds;
  }
  const ok = column();
  const failed = column();
  for (const snapshot of timeline.snapshots) {
    (snapshot.status === 'succeeded' ? ok : failed)[index.get(seconds(snapshot.at))!] = 1;
  }

  const marker = (label: string, colour: string): uPlot.Series => ({
    label,
    scale: 'snapshots',
    stroke: colour,
    fill: colour,
    paths: () => null,
    points: { show: true, size: 11, width: 2, stroke: colour, fill: colour },
    value: (_u, v) => (v === null ? '—' : 'yes'),
  });
  const series: uPlot.Series[] = [
    {},
    ...[...lagColumns.keys()].map(
      (label, i): uPlot.Series => ({
        label: `lag ${label}`,
        scale: 's',
        stroke: LAG_COLOURS[i % LAG_COLOURS.length],
        width: 2,
        spanGaps: true,
        value: (_u, v) => (v === null ? '—' : `${v.toFixed(1)} s`),
      }),
    ),
    marker('snapshot', SNAPSHOT_OK),
    marker('failed snapshot', SNAPSHOT_FAILED),
  ];
  return { series, data: [times, ...lagColumns.values(), ok, failed] as uPlot.AlignedData };
}

/** The uPlot chart of the timeline, sized to its container. */
export function TimelineChart({ timeline }: { timeline: Timeline }) {
  const holder = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = holder.current;
    if (!element) return;
    const { series, data } = timelineData(timeline);
    const width = () => Math.max(280, element.clientWidth);
    const plot = new uPlot(
      {
        width: width(),
        height: HEIGHT,
        series,
        // UTC, like every other time on the page and in trendgen's logs.
        tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1000), 'Etc/UTC'),
        scales: {
          x: { time: true, range: [Date.parse(timeline.from) / 1000, Date.parse(timeline.to) / 1000] },
          s: { range: (_u, _min, max) => [0, Math.max(1, (max ?? 0) * 1.1)] },
          // Snapshot markers sit on a line of their own across the middle of the plot.
          snapshots: { range: [0, 2] },
        },
        axes: [{}, { scale: 's', label: 'lag (s)', size: 60 }],
        legend: { live: false },
        cursor: { drag: { x: false, y: false } },
      },
      data,
      element,
    );
    const resize = new ResizeObserver(() => plot.setSize({ width: width(), height: HEIGHT }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [timeline]);
  return <div ref={holder} class="chart" aria-hidden="true" />;
}
