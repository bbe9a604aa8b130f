import { defineStore } from 'pinia'
import { ref } from 'vue'
import { market } from '../lib/api'

export interface MarketInfo {
  symbol: string
  baseAsset: string
  quoteAsset: string
  tickSize: string
  stepSize: string
  minNotional: string
  trading: boolean
}

export interface Ticker {
  symbol: string
  openPrice: string
  lastPrice: string
  highPrice: string
  lowPrice: string
  volume: string
  quoteVolume: string
}

/** The listed markets (from `exchangeInfo`) and their 24 h tickers, kept live by the Trade screen. */
export const useMarkets = defineStore('markets', () => {
  const list = ref<MarketInfo[]>([])
  const tickers = ref<Record<string, Ticker>>({})

  async function load() {
    const [info, all] = await Promise.all([market<{ symbols: any[] }>('exchangeInfo'), market<Ticker[]>('ticker/24hr')])
    list.value = info.symbols.map((s) => {
      const filter = (type: string) => s.filters.find((f: any) => f.filterType === type) ?? {}
      return {
        symbol: s.symbol,
        baseAsset: s.baseAsset,
        quoteAsset: s.quoteAsset,
        tickSize: filter('PRICE_FILTER').tickSize,
        stepSize: filter('LOT_SIZE').stepSize,
        minNotional: filter('MIN_NOTIONAL').minNotional ?? '0',
        trading: s.status === 'TRADING',
      }
    })
    tickers.value = Object.fromEntries(all.map((t) => [t.symbol, t]))
  }

  /** A `<symbol>@ticker` stream message. */
  function onTicker(data: any) {
    tickers.value[data.s] = {
      symbol: data.s,
      openPrice: data.o,
      lastPrice: data.c,
      highPrice: data.h,
      lowPrice: data.l,
      volume: data.v,
      quoteVolume: data.q,
    }
  }

  return { list, tickers, load, onTicker }
})
