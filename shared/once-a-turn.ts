// Coalesces work per event-loop turn: however often the returned function is
// called during one turn, `fn` runs once, on the next (setImmediate), or at
// the end of the current one (process.nextTick). Used to batch what crosses
// threads or sockets (member counts, MPUBs, answers, FIN/REQ).

export function onceATurn(fn: () => void, schedule: (run: () => void) => void = setImmediate): () => void {
  let scheduled = false;
  const run = (): void => {
    scheduled = false;
    fn();
  };
  return () => {
    if (scheduled) return;
    scheduled = true;
    schedule(run);
  };
}
