// A local order book kept from the depth streams by Binance's documented procedure: buffer
// the diffs, take a REST snapshot, drop what the snapshot already holds, then apply each diff
// whose first update id follows the last one applied; a gap means the book is out of sync and
// must be rebuilt. Prices and quantities stay decimal strings; levels are keyed by their
// canonical text.

import { ceilTo, cmp, floorTo, isZero, parse, show, add } from './decimal'

export type Level = [price: string, qty: string]

export interface Snapshot {
  lastUpdateId: number
  bids: Level[]
  asks: Level[]
}

export interface DepthDiff {
  /** First update id in the event. */
  U: number
  /** Final update id in the event. */
  u: number
  b: Level[]
  a: Level[]
}

export type Applied = 'applied' | 'stale' | 'gap' | 'buffered'

const canonical = (p: string) => show(parse(p))

export class LocalBook {
  private bids = new Map<string, string>()
  private asks = new Map<string, string>()
  private buffer: DepthDiff[] = []
  /** The last update id applied; `null` until a snapshot arrives. */
  lastUpdateId: number | null = null

  /** Keeps a diff until the snapshot arrives, or applies it. */
  push(diff: DepthDiff): Applied {
    if (this.lastUpdateId === null) {
      this.buffer.push(diff)
      return 'buffered'
    }
    return this.apply(diff)
  }

  /** Loads the snapshot and replays the buffered diffs that follow it. */
  load(snapshot: Snapshot): Applied {
    this.bids = new Map(snapshot.bids.map(([p, q]) => [canonical(p), q]))
    this.asks = new Map(snapshot.asks.map(([p, q]) => [canonical(p), q]))
    this.lastUpdateId = snapshot.lastUpdateId
    const buffered = this.buffer
    this.buffer = []
    for (const diff of buffered) {
      if (this.apply(diff) === 'gap') return 'gap'
    }
    return 'applied'
  }

  /** Forgets everything (after a gap or a reconnect). */
  reset(): void {
    this.bids.clear()
    this.asks.clear()
    this.buffer = []
    this.lastUpdateId = null
  }

  private apply(diff: DepthDiff): Applied {
    const last = this.lastUpdateId ?? 0
    if (diff.u <= last) return 'stale'
    if (diff.U > last + 1) return 'gap'
    for (const [p, q] of diff.b) set(this.bids, canonical(p), q)
    for (const [p, q] of diff.a) set(this.asks, canonical(p), q)
    this.lastUpdateId = diff.u
    return 'applied'
  }

  /** Best first: bids high to low. */
  bidLevels(): Level[] {
    return [...this.bids.entries()].sort((x, y) => cmp(y[0], x[0]))
  }

  /** Best first: asks low to high. */
  askLevels(): Level[] {
    return [...this.asks.entries()].sort((x, y) => cmp(x[0], y[0]))
  }
}

function set(side: Map<string, string>, price: string, qty: string) {
  if (isZero(qty)) side.delete(price)
  else side.set(price, qty)
}

/**
 * Levels grouped by a price step, best first, at most `depth` of them: bids round down and
 * asks round up, so a grouped level never shows a better price than any order in it.
 */
export function group(levels: Level[], step: string, side: 'bid' | 'ask', depth: number): Level[] {
  const out: Level[] = []
  for (const [price, qty] of levels) {
    const bucket = side === 'bid' ? floorTo(price, step) : ceilTo(price, step)
    const last = out[out.length - 1]
    if (last && cmp(last[0], bucket) === 0) last[1] = add(last[1], qty)
    else {
      if (out.length === depth) break
      out.push([bucket, qty])
    }
  }
  return out
}

/** Running totals (cumulative quantity) of best-first levels, for the depth bars. */
export function cumulative(levels: Level[]): string[] {
  let total = '0'
  return levels.map(([, q]) => (total = add(total, q)))
}
