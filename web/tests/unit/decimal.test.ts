import { describe, expect, it } from 'vitest'
import { add, ceilTo, changePercent, cmp, div, floorTo, format, fromUnits, mul, parse, show, sub, truncate } from '../../src/lib/decimal'

describe('decimal strings', () => {
  it('add and subtract without floating-point drift', () => {
    // 0.1 + 0.2 is 0.30000000000000004 in binary floating point.
    expect(add('0.1', '0.2')).toBe('0.3')
    let total = '0'
    for (let i = 0; i < 1000; i++) total = add(total, '0.001')
    expect(total).toBe('1')
    expect(sub('1', '0.999999999999999999')).toBe('0.000000000000000001')
    expect(sub('0.5', '2')).toBe('-1.5')
  })

  it('multiply and divide exactly, rounding toward zero', () => {
    expect(mul('2000.01', '0.001')).toBe('2.00001')
    expect(mul('123456789012345678.9', '10')).toBe('1234567890123456789')
    expect(div('1', '3', 8)).toBe('0.33333333')
    expect(div('2', '3', 2)).toBe('0.66')
    expect(() => div('1', '0', 2)).toThrow()
  })

  it('compare, canonicalise and refuse what is not a decimal', () => {
    expect(cmp('1.10', '1.1')).toBe(0)
    expect(cmp('-1', '0.0001')).toBe(-1)
    expect(show(parse('0010.2500'))).toBe('10.25')
    expect(show(parse('-0.000'))).toBe('0')
    for (const bad of ['1e3', 'NaN', '', '1.2.3', '0x10', ' . ']) expect(() => parse(bad)).toThrow()
  })

  it('rounds to a step: bids down, asks up, quantities cut to the lot grid', () => {
    expect(floorTo('2000.57', '0.1')).toBe('2000.5')
    expect(ceilTo('2000.51', '0.1')).toBe('2000.6')
    expect(ceilTo('2000.5', '0.1')).toBe('2000.5')
    expect(floorTo('17', '5')).toBe('15')
    expect(floorTo('-1.5', '1')).toBe('-2')
    expect(truncate('1.999', 2)).toBe('1.99')
  })

  it('formats for people: grouped, fixed places, never rounded up', () => {
    expect(format('1234567.891', 2)).toBe('1,234,567.89')
    expect(format('0.999', 2)).toBe('0.99')
    expect(format('5', 3)).toBe('5.000')
    expect(format('-1234.5', 1)).toBe('-1,234.5')
    expect(changePercent('2000', '2050')).toBe('+2.50')
    expect(changePercent('2000', '1990')).toBe('-0.50')
    expect(changePercent('0', '5')).toBe('0.00')
    expect(fromUnits('1500000', 6)).toBe('1.5')
    expect(fromUnits('1', 18)).toBe('0.000000000000000001')
  })
})
