// Checks a revenue-share payout against the week's published Merkle root, in the browser, with
// WebCrypto's SHA-256: the server's word is not needed. The layout mirrors coss-dao's merkle.rs:
// leaf = SHA-256(0x00 ‖ close u64 ‖ account u64 ‖ holding u128 ‖ count u16 ‖ (asset u32 ‖
// amount u128)…), all big-endian, payouts ascending by asset; node = SHA-256(0x01 ‖ left ‖
// right).

export interface Payout {
  asset: number
  /** Smallest units, as decimal integer text. */
  amount: string
}

export interface ProofStep {
  /** The partner's hash, hex. */
  hash: string
  /** The partner is the left child. */
  left: boolean
}

function be(value: bigint, bytes: number): Uint8Array {
  if (value < 0n || value >= 1n << BigInt(bytes * 8)) throw new Error('out of range')
  const out = new Uint8Array(bytes)
  for (let i = bytes - 1; i >= 0; i--) {
    out[i] = Number(value & 0xffn)
    value >>= 8n
  }
  return out
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

export function toHex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')
}

export function fromHex(hex: string): Uint8Array {
  const clean = hex.startsWith('0x') ? hex.slice(2) : hex
  if (!/^[0-9a-fA-F]{64}$/.test(clean)) throw new Error('not a 32-byte hash')
  return Uint8Array.from(clean.match(/../g)!.map((h) => parseInt(h, 16)))
}

async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', data as BufferSource))
}

/** The leaf of one holder's week. */
export async function leafHash(
  closeMs: bigint,
  account: bigint,
  holding: bigint,
  payouts: Payout[],
): Promise<Uint8Array> {
  const sorted = [...payouts].sort((a, b) => a.asset - b.asset)
  const parts = [
    new Uint8Array([0]),
    be(closeMs, 8),
    be(account, 8),
    be(holding, 16),
    be(BigInt(sorted.length), 2),
  ]
  for (const p of sorted) parts.push(be(BigInt(p.asset), 4), be(BigInt(p.amount), 16))
  return sha256(concat(parts))
}

/** The root a leaf and its proof lead to. */
export async function rootOf(leaf: Uint8Array, proof: ProofStep[]): Promise<Uint8Array> {
  let hash = leaf
  for (const step of proof) {
    const partner = fromHex(step.hash)
    hash = await sha256(
      concat(step.left ? [new Uint8Array([1]), partner, hash] : [new Uint8Array([1]), hash, partner]),
    )
  }
  return hash
}

/** Whether the leaf and its proof lead to the published root. */
export async function verify(leaf: Uint8Array, proof: ProofStep[], root: string): Promise<boolean> {
  return toHex(await rootOf(leaf, proof)) === toHex(fromHex(root))
}
