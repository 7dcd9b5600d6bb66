// In-process MessagePort pairs for the unit tests: the code under test holds
// `near`, the test holds `far`, records what arrives there and can wait until
// everything posted so far crossed, either way (a marker frame behind it:
// a channel keeps order).

import { MessageChannel, type MessagePort } from 'node:worker_threads';

const MARK = 'test-mark';

/** What the helpers need of a tap test. */
export interface Teardown {
  teardown(fn: () => void): void;
}

export interface Link<T> {
  /** The end handed to the code under test. */
  readonly near: MessagePort;
  /** The test's end. */
  readonly far: MessagePort;
  /** Frames that reached `far`, markers left out. */
  readonly frames: T[];
  /** Resolves once everything the code posted on `near` until the next turn reached `far`. */
  fromCode(): Promise<T[]>;
  /** Resolves once everything the test posted on `far` was dispatched on `near`. */
  toCode(): Promise<void>;
  /** Takes the frames received so far. */
  take(): T[];
}

export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function mark(to: MessagePort, from: MessagePort): Promise<void> {
  return new Promise((resolve) => {
    const id = Math.random();
    const on = (m: { t?: unknown; id?: unknown }): void => {
      if (m?.t === MARK && m.id === id) {
        to.off('message', on);
        resolve();
      }
    };
    to.on('message', on);
    from.postMessage({ t: MARK, id });
  });
}

/** A channel closed at teardown (closing one end closes both). */
export function link<T>(t: Teardown): Link<T> {
  const { port1: near, port2: far } = new MessageChannel();
  const frames: T[] = [];
  far.on('message', (f: T & { t?: unknown }) => {
    if (f?.t !== MARK) frames.push(f);
  });
  t.teardown(() => far.close());
  return {
    near,
    far,
    frames,
    async fromCode() {
      // Code that posts once a turn (setImmediate) has posted after this.
      await turn();
      await mark(far, near);
      return frames;
    },
    toCode: () => mark(near, far),
    take: () => frames.splice(0),
  };
}

export interface Watched {
  state: 'pending' | 'resolved' | 'rejected';
  error: unknown;
}

/** Tracks whether a promise settled yet (seen once its callbacks ran). */
export function watch(p: Promise<unknown>): Watched {
  const w: Watched = { state: 'pending', error: undefined };
  p.then(
    () => {
      w.state = 'resolved';
    },
    (err: unknown) => {
      w.state = 'rejected';
      w.error = err;
    },
  );
  return w;
}
