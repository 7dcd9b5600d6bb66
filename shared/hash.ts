// Which shard owns a group: FNV-1a (32-bit) over the card_id's UTF-16 code
// units, mod the shard count. Fixed (every thread must agree, and it must not
// change between releases or restarts), fast (no allocation, no encoding), and
// well spread for short ids such as "user_123".

export function ownerOf(cardId: string, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < cardId.length; i++) {
    h ^= cardId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shards;
}
