// The chaos run's plot: pushes per second (offered, acknowledged, failed,
// delivered: first frame at any member; from the records' times), connections,
// and latency, with each fault shaded from its start to when it was over from
// the bench's side. Frames per second are in the JSON (`perSecond.frames`).

import type { FaultRecord } from './chaos-faults';
import type { PerSecond } from './chaos-verdict';
import type { PlotSpec } from './plot';
import type { RunResult } from './results';

export function chaosPlot(r: RunResult): PlotSpec {
  const s = r.series;
  const o = r.options;
  const sum = r.summary;
  const per = sum.perSecond as PerSecond;
  const faults = sum.faults as FaultRecord[];
  return {
    title: `chaos: pusher, nsq, ${o.connections} conns in groups of ${o.groupSize}, offered ${o.rate} pushes/s over ${o.path}`,
    subtitle: `${r.startedAt} · ${r.machine.cpus} cpu · missed by connected members ${sum.missedByConnectedMembers} of ${sum.checkedDeliveries}`
      + ` · acknowledged ${sum.acknowledged}, failed ${sum.failed}, duplicates ${sum.duplicates}`,
    x: s.map((i) => i.t),
    xLabel: 'seconds since start (shaded: a fault, from its start until it was over)',
    marks: faults.map((f) => ({ from: f.at, to: f.doneAt, label: f.label })),
    panels: [
      {
        title: 'pushes per second', log: false, series: [
          { label: 'offered', color: '#1f77b4', values: per.sent },
          { label: 'acknowledged', color: '#9467bd', values: per.acked },
          { label: 'failed', color: '#d62728', values: per.failed },
          { label: 'delivered (1st frame)', color: '#2ca02c', values: per.deliveredPushes },
        ],
      },
      {
        title: 'connections joined and open', log: false, series: [
          { label: 'connections', color: '#8c564b', values: s.map((i) => i.conns) },
        ],
      },
      {
        title: 'push-to-delivery latency of the frames received, ms (log scale)', log: true, series: [
          { label: 'p50', color: '#2ca02c', values: s.map((i) => i.p50) },
          { label: 'p99', color: '#ff7f0e', values: s.map((i) => i.p99) },
          { label: 'max', color: '#d62728', values: s.map((i) => i.max) },
        ],
      },
    ],
  };
}
