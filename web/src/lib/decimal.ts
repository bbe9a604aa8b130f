// Decimal strings, exactly. Prices, quantities, balances and fees travel as decimal strings
// ("1234.5600") and are never parsed into a JavaScript number for arithmetic: a binary float
// cannot hold 0.1, and a sum of such errors is a wrong balance on screen. Arithmetic here is
// on BigInt integers scaled by a power of ten.

/** A decimal: `int / 10^scale`. */
export interface Dec {
  readonly int: bigint
  readonly scale: number
}

const PATTERN = /^(-)?(\d+)(?:\.(\d+))?$/

/** Parses a decimal string ("-12.340"); throws on anything else (exponents included). */
export function parse(text: string): Dec {
  const m = PATTERN.exec(text.trim())
  if (!m) throw new Error(`not a decimal: ${JSON.stringify(text)}`)
  const frac = m[3] ?? ''
  const int = BigInt(m[2] + frac)
  return { int: m[1] ? -int : int, scale: frac.length }
}

/** Whether the text is a non-negative decimal a user may type ("1", "1.5", ".5" is not). */
export function isDecimal(text: string): boolean {
  return /^\d+(\.\d+)?$/.test(text.trim())
}

function rescale(d: Dec, scale: number): bigint {
  return d.int * 10n ** BigInt(scale - d.scale)
}

function align(a: Dec, b: Dec): [bigint, bigint, number] {
  const scale = Math.max(a.scale, b.scale)
  return [rescale(a, scale), rescale(b, scale), scale]
}

export function add(a: string, b: string): string {
  const [x, y, scale] = align(parse(a), parse(b))
  return show({ int: x + y, scale })
}

export function sub(a: string, b: string): string {
  const [x, y, scale] = align(parse(a), parse(b))
  return show({ int: x - y, scale })
}

export function mul(a: string, b: string): string {
  const x = parse(a)
  const y = parse(b)
  return show({ int: x.int * y.int, scale: x.scale + y.scale })
}

/** `a / b` rounded toward zero to `scale` places. */
export function div(a: string, b: string, scale: number): string {
  const x = parse(a)
  const y = parse(b)
  if (y.int === 0n) throw new Error('division by zero')
  // a/b = (x.int / 10^xs) / (y.int / 10^ys); scaled by 10^scale.
  const num = x.int * 10n ** BigInt(scale + y.scale)
  const den = y.int * 10n ** BigInt(x.scale)
  return show({ int: num / den, scale })
}

export function cmp(a: string, b: string): number {
  const [x, y] = align(parse(a), parse(b))
  return x < y ? -1 : x > y ? 1 : 0
}

export function isZero(a: string): boolean {
  return parse(a).int === 0n
}

/** Canonical text: no trailing fractional zeros, "0" for zero. */
export function show(d: Dec): string {
  const negative = d.int < 0n
  let digits = (negative ? -d.int : d.int).toString()
  if (d.scale > 0) {
    digits = digits.padStart(d.scale + 1, '0')
    const whole = digits.slice(0, digits.length - d.scale)
    const frac = digits.slice(digits.length - d.scale).replace(/0+$/, '')
    digits = frac ? `${whole}.${frac}` : whole
  }
  return negative && digits !== '0' ? `-${digits}` : digits
}

/** Rounds toward zero to `places` decimals. */
export function truncate(text: string, places: number): string {
  const d = parse(text)
  if (d.scale <= places) return show(d)
  return show({ int: d.int / 10n ** BigInt(d.scale - places), scale: places })
}

/** Rounds down (toward −∞) to a multiple of `step` ("0.01", "5"). */
export function floorTo(text: string, step: string): string {
  const [x, s, scale] = align(parse(text), parse(step))
  if (s <= 0n) throw new Error('step must be positive')
  let q = x / s
  if (x < 0n && x % s !== 0n) q -= 1n
  return show({ int: q * s, scale })
}

/** Rounds up (toward +∞) to a multiple of `step`. */
export function ceilTo(text: string, step: string): string {
  const [x, s, scale] = align(parse(text), parse(step))
  if (s <= 0n) throw new Error('step must be positive')
  let q = x / s
  if (x > 0n && x % s !== 0n) q += 1n
  return show({ int: q * s, scale })
}

/** How many decimals a step has ("0.010" → 2, "1" → 0). */
export function decimalsOf(step: string): number {
  const s = show(parse(step))
  const dot = s.indexOf('.')
  return dot < 0 ? 0 : s.length - dot - 1
}

/**
 * For people: exactly `places` decimals (rounded toward zero, never up: a balance shown must
 * be there), the whole part grouped by thousands with `group`.
 */
export function format(text: string, places: number, group = ','): string {
  const t = truncate(text, places)
  const negative = t.startsWith('-')
  const body = negative ? t.slice(1) : t
  const [whole, frac = ''] = body.split('.')
  const grouped = group ? whole.replace(/\B(?=(\d{3})+(?!\d))/g, group) : whole
  const padded = places > 0 ? `${grouped}.${frac.padEnd(places, '0')}` : grouped
  return negative ? `-${padded}` : padded
}

/** Percentage change from `open` to `last`, two decimals ("+1.25", "-0.40"). */
export function changePercent(open: string, last: string): string {
  if (isZero(open)) return '0.00'
  const pct = div(mul(sub(last, open), '100'), open, 2)
  const text = format(pct, 2, '')
  return cmp(pct, '0') > 0 ? `+${text}` : text
}

/** Smallest-unit integer text ("1500000", 6 decimals) → decimal string ("1.5"). */
export function fromUnits(units: string, decimals: number): string {
  return show({ int: BigInt(units), scale: decimals })
}
