// The one place that renders what a client receives for a push:
// {"type":1,"data":"<content>"} (gopusher's ServerMsg).

export function renderPush(content: string): string {
  return '{"type":1,"data":' + JSON.stringify(content) + '}';
}

/** Reply to join and ping. */
export const OK_FRAME = '{"type":1,"data":"ok"}';
