import { describe, expect, it } from 'vitest'
import { LocalBook, cumulative, group } from '../../src/lib/book'

const snapshot = {
  lastUpdateId: 10,
  bids: [['100.00', '1'], ['99.50', '2']] as [string, string][],
  asks: [['101.00', '1.5'], ['102.00', '3']] as [string, string][],
}

describe('the local order book (Binance’s procedure)', () => {
  it('buffers diffs until the snapshot, drops what it holds, applies what follows', () => {
    const book = new LocalBook()
    expect(book.push({ U: 5, u: 9, b: [['100', '7']], a: [] })).toBe('buffered') // older than the snapshot
    expect(book.push({ U: 10, u: 12, b: [['100', '0']], a: [['101', '2']] })).toBe('buffered')
    expect(book.load(snapshot)).toBe('applied')
    expect(book.lastUpdateId).toBe(12)
    expect(book.bidLevels()).toEqual([['99.5', '2']]) // 100 removed by a zero quantity
    expect(book.askLevels()).toEqual([['101', '2'], ['102', '3']]) // the same price, however written
    expect(book.push({ U: 13, u: 13, b: [['100.5', '1']], a: [] })).toBe('applied')
    expect(book.bidLevels()[0]).toEqual(['100.5', '1'])
    expect(book.push({ U: 12, u: 13, b: [], a: [] })).toBe('stale')
  })

  it('reports a gap instead of showing a wrong book', () => {
    const book = new LocalBook()
    book.load(snapshot)
    expect(book.push({ U: 15, u: 16, b: [], a: [] })).toBe('gap')
    expect(book.lastUpdateId).toBe(10)
    const late = new LocalBook()
    late.push({ U: 20, u: 21, b: [], a: [] })
    expect(late.load(snapshot)).toBe('gap') // the snapshot is older than the first diff
  })

  it('sorts levels numerically, not as text', () => {
    const book = new LocalBook()
    book.load({ lastUpdateId: 1, bids: [['9.5', '1'], ['10', '1'], ['100', '1']], asks: [['1000', '1'], ['999.99', '1']] })
    expect(book.bidLevels().map(([p]) => p)).toEqual(['100', '10', '9.5'])
    expect(book.askLevels().map(([p]) => p)).toEqual(['999.99', '1000'])
  })

  it('groups by a price step (bids down, asks up) and sums exactly', () => {
    const bids: [string, string][] = [['100.07', '0.1'], ['100.02', '0.2'], ['99.99', '0.3']]
    expect(group(bids, '0.1', 'bid', 10)).toEqual([['100', '0.3'], ['99.9', '0.3']])
    const asks: [string, string][] = [['100.01', '0.1'], ['100.09', '0.2'], ['100.11', '0.3']]
    expect(group(asks, '0.1', 'ask', 10)).toEqual([['100.1', '0.3'], ['100.2', '0.3']])
    expect(group(asks, '0.1', 'ask', 1)).toEqual([['100.1', '0.3']])
    expect(cumulative([['1', '0.1'], ['2', '0.2']])).toEqual(['0.1', '0.3'])
  })

  it('applies a thousand diffs without drift', () => {
    const book = new LocalBook()
    book.load({ lastUpdateId: 0, bids: [], asks: [] })
    for (let i = 1; i <= 1000; i++) book.push({ U: i, u: i, b: [[`${1000 + (i % 7)}.01`, `0.${i % 10}`]], a: [] })
    expect(book.lastUpdateId).toBe(1000)
    expect(book.bidLevels().length).toBeLessThanOrEqual(7)
  })
})
