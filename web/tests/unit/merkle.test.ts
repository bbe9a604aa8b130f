import { describe, expect, it } from 'vitest'
import { fromHex, leafHash, rootOf, toHex, verify } from '../../src/lib/merkle'
import { createHash } from 'node:crypto'

// A leaf and a two-leaf tree computed independently with node:crypto, following coss-dao's
// layout (leaf: 0x00 ‖ close u64 ‖ account u64 ‖ holding u128 ‖ count u16 ‖ (asset u32 ‖
// amount u128)…; node: 0x01 ‖ left ‖ right), big-endian.
function be(value: bigint, bytes: number): Buffer {
  const out = Buffer.alloc(bytes)
  for (let i = bytes - 1; i >= 0; i--) {
    out[i] = Number(value & 0xffn)
    value >>= 8n
  }
  return out
}
function reference(close: bigint, account: bigint, holding: bigint, payouts: [number, bigint][]): Buffer {
  const parts = [Buffer.from([0]), be(close, 8), be(account, 8), be(holding, 16), be(BigInt(payouts.length), 2)]
  for (const [asset, amount] of payouts) parts.push(be(BigInt(asset), 4), be(amount, 16))
  return createHash('sha256').update(Buffer.concat(parts)).digest()
}

describe('the revenue share Merkle check, in the browser', () => {
  it('recomputes the leaf as coss-dao does, payouts in asset order', async () => {
    const leaf = await leafHash(1_764_547_200_000n, 1001n, 5_000_000_000_000n, [
      { asset: 2, amount: '1500000' },
      { asset: 1, amount: '340000000000000000' },
    ])
    const expected = reference(1_764_547_200_000n, 1001n, 5_000_000_000_000n, [[1, 340000000000000000n], [2, 1500000n]])
    expect(toHex(leaf)).toBe(expected.toString('hex'))
  })

  it('walks the path to the root and rejects a changed amount', async () => {
    const mine = reference(1n, 7n, 100n, [[1, 10n]])
    const other = reference(1n, 8n, 300n, [[1, 30n]])
    const root = createHash('sha256').update(Buffer.concat([Buffer.from([1]), mine, other])).digest('hex')
    const leaf = await leafHash(1n, 7n, 100n, [{ asset: 1, amount: '10' }])
    const proof = [{ hash: other.toString('hex'), left: false }]
    expect(await verify(leaf, proof, root)).toBe(true)
    expect(toHex(await rootOf(leaf, proof))).toBe(root)
    const inflated = await leafHash(1n, 7n, 100n, [{ asset: 1, amount: '11' }])
    expect(await verify(inflated, proof, root)).toBe(false)
    expect(await verify(leaf, [{ hash: other.toString('hex'), left: true }], root)).toBe(false)
    expect(() => fromHex('abc')).toThrow()
  })
})
