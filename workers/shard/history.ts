// Per-card history, kept by the shard that owns the card: its last
// `history.size` pushes, each with an offset (one more per push to the card)
// and the card's epoch, so that a connection that comes back can be given what
// it missed (a "seam": the pushes after its offset, then live ones). Runs in a
// shard thread.
//
// The owner sees every push to its cards, in task order, before it forwards
// them: it numbers them here, so every member on every shard gets the same
// offset for the same push. A card keeps a history only while it has a member
// that joined with recovery, and for `ttl` after its last push or membership
// change: cards that only gopusher-style clients use cost nothing. An epoch
// names one life of a card's history: a new one when the record is made
// again (the shard or the node restarted, or the card was forgotten), so an
// offset from another epoch means "history lost".
//
// Memory (measured with bench/history-mem.ts, README "Recovery and
// broadcast"): ~165 B per card with a record; its ring of kept pushes starts
// at FIRST_SLOTS slots and doubles up to `size` (~16 B per slot, ~8 more
// once a push has an app_id); per kept push its frame text, shared by every
// card of the same push in one batch. Kept text is capped per shard
// (maxBytes): past it, the least recently active cards lose their kept
// pushes first.

import { randomBytes } from 'node:crypto';
import type { HistoryLimits, Payloads, Positions, SeamReply, SeamRequest } from '../../shared/frames';

/** Slots of a card's first ring of kept pushes (then doubled up to history.size). */
const FIRST_SLOTS = 4;
/** A record moves to the end of the map (the sweep's order) at most this often. */
const PLACE_MS = 1_000;
/** Past maxBytes, cards lose their kept pushes until the shard is under this share of it. */
const SHED_TO = 0.9;

class CardHistory {
  /** Offset of the newest push (0: none yet). */
  top = 0;
  /** Kept pushes: offsets top-len+1 .. top, oldest at ring index `head`. */
  len = 0;
  head = 0;
  /**
   * Ring of kept pushes, made on the first one with FIRST_SLOTS slots and
   * doubled up to `size` as it fills: a card pushed to rarely costs little.
   */
  texts: (string | undefined)[] | null = null;
  /** The pushes' app_ids, made only once one has an app_id ('' for all before it). */
  apps: string[] | null = null;
  at: number[] | null = null;
  /** Characters of kept text. */
  bytes = 0;

  constructor(readonly epoch: string, public placed: number) {}

  /** Numbers one push; keeps it when size > 0. Returns the change in kept characters. */
  add(text: string, app: string, now: number, size: number): number {
    this.top++;
    if (size === 0) return 0;
    let delta = 0;
    if (this.texts === null) {
      const slots = Math.min(size, FIRST_SLOTS);
      this.texts = new Array(slots);
      this.at = new Array(slots);
    } else if (this.len === this.texts.length) {
      if (this.len === size) delta -= this.dropOldest();
      else this.grow(Math.min(size, this.len * 2));
    }
    const slots = this.texts.length;
    const i = (this.head + this.len) % slots;
    if (app !== '' && this.apps === null) this.apps = new Array<string>(slots).fill('');
    this.texts[i] = text;
    if (this.apps !== null) this.apps[i] = app;
    this.at![i] = now;
    this.len++;
    this.bytes += text.length;
    return delta + text.length;
  }

  /** A bigger ring, oldest first at index 0. */
  private grow(slots: number): void {
    const texts = new Array<string | undefined>(slots);
    const at = new Array<number>(slots);
    const apps = this.apps === null ? null : new Array<string>(slots).fill('');
    const old = this.texts!.length;
    for (let k = 0; k < this.len; k++) {
      const i = (this.head + k) % old;
      texts[k] = this.texts![i];
      at[k] = this.at![i]!;
      if (apps !== null) apps[k] = this.apps![i]!;
    }
    this.texts = texts;
    this.at = at;
    this.apps = apps;
    this.head = 0;
  }

  private dropOldest(): number {
    const texts = this.texts!;
    const n = texts[this.head]!.length;
    texts[this.head] = undefined;
    this.head = (this.head + 1) % texts.length;
    this.len--;
    this.bytes -= n;
    return n;
  }

  /** Drops pushes older than `ttlMs`; returns the characters freed. */
  expire(now: number, ttlMs: number): number {
    let freed = 0;
    while (this.len > 0 && now - this.at![this.head]! >= ttlMs) freed += this.dropOldest();
    return freed;
  }

  /** Forgets every kept push (the offsets go on); returns the characters freed. */
  clear(): number {
    const freed = this.bytes;
    this.texts = this.apps = this.at = null;
    this.len = this.head = this.bytes = 0;
    return freed;
  }

  /** What a connection at `since` missed, if all of it is still kept. */
  seam(req: SeamRequest): SeamReply {
    const { since } = req;
    const missed = this.top - since;
    if (since < 0 || req.epoch !== this.epoch || missed < 0 || missed > this.len) return position(false, this.top, this.epoch);
    const payloads: string[] = [];
    const offsets: number[] = [];
    const size = this.texts?.length ?? 0;
    for (let k = this.len - missed; k < this.len; k++) {
      const i = (this.head + k) % size;
      const app = this.apps === null ? '' : this.apps[i]!;
      if (app !== '' && app !== req.app) continue;
      payloads.push(this.texts![i]!);
      offsets.push(this.top - this.len + 1 + k);
    }
    return { recovered: true, offset: this.top, epoch: this.epoch, payloads, offsets };
  }
}

function position(recovered: boolean, offset: number, epoch: string): SeamReply {
  return { recovered, offset, epoch, payloads: [], offsets: [] };
}

/** The answer when the card's owner is not there to give one (restarting). */
export const UNKNOWN_POSITION: SeamReply = Object.freeze(position(false, -1, ''));

export class History {
  /** card -> its history; in the order they were last active (roughly: see touch). */
  private readonly cards = new Map<string, CardHistory>();
  /** Names this shard's life in every epoch it makes. */
  private readonly tag = randomBytes(6).toString('base64url');
  private made = 0;
  /** Characters of kept text, all cards. */
  bytes = 0;

  /** `hasMembers(card)`: whether the card has a member on any shard (a record is kept while it does). */
  constructor(private readonly limits: HistoryLimits, private readonly hasMembers: (card: string) => boolean) {}

  get size(): number {
    return this.cards.size;
  }

  /** The card's record, made (with a new epoch) if it has none; counts as activity. */
  private ensure(card: string, now: number): CardHistory {
    let rec = this.cards.get(card);
    if (rec === undefined) {
      rec = new CardHistory(`${this.tag}${(this.made++).toString(36)}`, now);
      this.cards.set(card, rec);
    } else this.place(card, rec, now);
    return rec;
  }

  /** A member with recovery joined the card somewhere: keep its history from now on. */
  keep(card: string, now: number): void {
    this.ensure(card, now);
  }

  /** The card's members changed: its record (if any) lives `ttl` from now. */
  touch(card: string, now: number): void {
    const rec = this.cards.get(card);
    if (rec !== undefined) this.place(card, rec, now);
  }

  // Map order is the sweep's order: a record moves to the end when active,
  // at most once per PLACE_MS so a busy card costs no Map churn per push.
  private place(card: string, rec: CardHistory, now: number): void {
    if (now - rec.placed < PLACE_MS) return;
    rec.placed = now;
    this.cards.delete(card);
    this.cards.set(card, rec);
  }

  /** Where a joining connection stands, and what it missed; made atomically with registering it (see registry.ts). */
  seam(req: SeamRequest, now: number): SeamReply {
    const rec = this.ensure(req.card, now);
    this.bytes -= rec.expire(now, this.limits.ttlMs);
    return rec.seam(req);
  }

  /**
   * Numbers (and keeps) a batch's deliveries to cards that have a history,
   * in the batch's order. Returns their positions, or null when no card of
   * the batch has one (the common case: a Map lookup per card at most).
   */
  record(batch: Payloads, now: number): Positions | null {
    if (this.cards.size === 0) return null;
    const { cards, offs, msgs, apps, buf, ends } = batch;
    const { size, ttlMs } = this.limits;
    let first: Float64Array | null = null;
    let epochs: string[] | null = null;
    // A push's text is decoded once, and shared by every card it goes to.
    let texts: (string | undefined)[] | null = null;
    let bytes: Buffer | null = null;
    for (let k = 0; k < cards.length; k++) {
      const card = cards[k]!;
      const rec = this.cards.get(card);
      if (rec === undefined) continue;
      if (first === null) {
        first = new Float64Array(cards.length);
        epochs = new Array<string>(cards.length).fill('');
        texts = new Array(ends.length);
        bytes = Buffer.from(buf);
      }
      first[k] = rec.top + 1;
      epochs![k] = rec.epoch;
      let delta = -rec.expire(now, ttlMs);
      for (let i = offs[k]!; i < offs[k + 1]!; i++) {
        const m = msgs[i]!;
        let text = '';
        if (size > 0) text = texts![m] ??= bytes!.toString('utf8', m === 0 ? 0 : ends[m - 1]!, ends[m]!);
        delta += rec.add(text, apps[m]!, now, size);
      }
      this.bytes += delta;
      this.place(card, rec, now);
    }
    if (this.bytes > this.limits.maxBytes) this.shed();
    return first === null ? null : { first, epochs: epochs! };
  }

  /** Past maxBytes: the least recently active cards forget their kept pushes (their offsets go on). */
  private shed(): void {
    const target = this.limits.maxBytes * SHED_TO;
    for (const rec of this.cards.values()) {
      if (this.bytes <= target) return;
      this.bytes -= rec.clear();
    }
  }

  /**
   * Forgets the cards idle for `ttl` (no push, no membership change) that
   * have no member left; drops expired pushes of idle cards that still have
   * members. Walks from the least recently active and stops at the first
   * that is not idle.
   */
  sweep(now: number): void {
    const { ttlMs } = this.limits;
    for (const [card, rec] of this.cards) {
      // placed lags activity by < PLACE_MS: never forget early.
      if (now - rec.placed < ttlMs + PLACE_MS) return;
      if (this.hasMembers(card)) {
        this.bytes -= rec.expire(now, ttlMs);
        this.place(card, rec, now);
      } else {
        this.bytes -= rec.bytes;
        this.cards.delete(card);
      }
    }
  }
}
