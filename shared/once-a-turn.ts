// Coalesces work per event-loop turn: however often the returned function is
// called during one turn, `fn` runs once, on the next (setImmediate). Used to
// batch what crosses threads or sockets (member counts, MPUBs, FIN/REQ).

export function onceATurn(fn: () => void): () => void {
  let scheduled = false;
  const run = (): void => {
    scheduled = false;
    fn();
  };
  return () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(run);
  };
}
