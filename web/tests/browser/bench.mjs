// The web app's figures, printed (never asserted): JavaScript shipped for the first view of the
// trading screen (gzipped, as sent); time from navigation to an interactive trading screen on
// loopback (median of 7 cold loads); and the order book's frame times in Chromium while a bot
// keeps about 1,000 depth updates a second flowing, against the same page idle (the peer).
// It starts its own `coss up` (a release build is what to measure) on a free port with a
// scratch data dir, and stops it at the end.
//
// node web/tests/browser/bench.mjs --coss target/release/coss [--seconds 5] [--json]

import { chromium } from 'playwright-core'
import { spawn } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { PASSWORD, sleep, totp, verificationToken, waitFor } from './support.mjs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const { values: args } = parseArgs({
  options: { coss: { type: 'string' }, seconds: { type: 'string' }, json: { type: 'boolean' }, chromium: { type: 'string' } },
})
const WEB = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const SECONDS = Number(args.seconds ?? '5')

async function freePort() {
  return new Promise((ok) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => ok(port))
    })
  })
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]
}

async function main() {
  const data = mkdtempSync(join(tmpdir(), 'coss-web-bench-'))
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const server = spawn(args.coss ?? 'target/release/coss', ['up', '--listen', `127.0.0.1:${port}`, '--data-dir', data, '--web-dir', join(WEB, 'dist')], {
    env: { ...process.env, COSS_ORDERS_PER_10S: '1000000', COSS_WEIGHT_PER_MINUTE: '100000000', COSS_ORDERS_PER_DAY: '100000000' },
    stdio: ['ignore', 'ignore', 'ignore'],
  })
  const browser = await chromium.launch({
    executablePath: args.chromium ?? process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage'],
  })
  try {
    await waitFor('coss up', () => fetch(`${base}/health`).then((r) => r.ok).catch(() => false), 120_000)
    const report = { first_view: await firstView(browser, base) }
    const bot = await trader(base, data)
    report.frames = await frames(browser, base, bot)
    if (args.json) console.log(JSON.stringify(report))
    else print(report)
  } finally {
    await browser.close()
    server.kill('SIGTERM')
    await new Promise((r) => server.on('exit', r))
    rmSync(data, { recursive: true, force: true })
  }
}

/** Cold loads of the trading screen: bytes of JavaScript as sent, and time to interactive. */
async function firstView(browser, base) {
  const times = []
  let scripts = null
  for (let i = 0; i < 7; i++) {
    const context = await browser.newContext()
    const page = await context.newPage()
    const started = Date.now()
    await page.goto(`${base}/trade/ETHTUSD`)
    // Interactive: the book has its snapshot, the form can be used, the chart is drawn.
    await page.waitForSelector('[data-test=place-order]')
    await page.waitForSelector('[data-test=chart] canvas')
    await page.waitForSelector('[data-test=book][data-synced=yes]')
    times.push(Date.now() - started)
    scripts ??= await page.evaluate(() =>
      performance
        .getEntriesByType('resource')
        .filter((e) => e.initiatorType === 'script' || e.name.endsWith('.js'))
        .map((e) => ({ name: new URL(e.name).pathname, sent: e.encodedBodySize, size: e.decodedBodySize })),
    )
    await context.close()
  }
  times.sort((a, b) => a - b)
  const sent = scripts.reduce((n, s) => n + s.sent, 0)
  const size = scripts.reduce((n, s) => n + s.size, 0)
  return { js_files: scripts.length, js_gzipped_bytes: sent, js_bytes: size, interactive_ms_median: times[3], interactive_ms_min: times[0], interactive_ms_max: times[6] }
}

/** A funded trader with an API key, made through the API as a bot's owner would. */
async function trader(base, data) {
  const email = `bench.${Date.now()}@example.com`
  const call = async (method, path, body, token) => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    })
    const text = await response.text()
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`)
    return text ? JSON.parse(text) : null
  }
  await call('POST', '/api/v1/auth/signup', { email, password: PASSWORD })
  const token = await verificationToken(data, email)
  await call('POST', '/api/v1/auth/verify-email', { token })
  const { access_token: access } = await call('POST', '/api/v1/auth/login', { email, password: PASSWORD })
  const { secret: seed } = await call('POST', '/api/v1/auth/2fa/totp', { password: PASSWORD }, access)
  const now = Date.now() / 1000
  await call('POST', '/api/v1/auth/2fa/totp/confirm', { code: totp(seed, now - 30) }, access)
  const key = await call('POST', '/api/v1/api-keys', { label: 'bench', permissions: ['read', 'trade'], totp_code: totp(seed, now) }, access)
  await call('POST', '/api/v1/wallet/test-funds', {}, access)
  await waitFor('the test funds', async () => {
    const balances = await call('GET', '/api/v1/wallet/balances', null, access).catch(() => [])
    return balances.some((b) => b.asset === 'TUSD' && !/^0(\.0+)?$/.test(b.available))
  }, 180_000)
  return { base, key: key.api_key, secret: key.secret }
}

/** Frame times of the trading screen, idle and then under ~1,000 depth updates a second. */
async function frames(browser, base, bot) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()
  await page.goto(`${base}/trade/ETHTUSD`)
  await page.waitForSelector('[data-test=book]')
  const measure = (ms) =>
    page.evaluate(
      (ms) =>
        new Promise((done) => {
          const times = []
          let last = performance.now()
          const end = last + ms
          const tick = (t) => {
            times.push(t - last)
            last = t
            if (t < end) requestAnimationFrame(tick)
            else done(times)
          }
          requestAnimationFrame(tick)
        }),
      ms,
    )
  const summarize = (times) => {
    const sorted = [...times].sort((a, b) => a - b)
    const p50 = percentile(sorted, 50)
    // A frame that took longer than one and a half display intervals dropped at least one.
    const dropped = times.filter((t) => t > p50 * 1.5).length
    return { frames: times.length, p50_ms: +p50.toFixed(1), p99_ms: +percentile(sorted, 99).toFixed(1), max_ms: +sorted[sorted.length - 1].toFixed(1), dropped }
  }
  const idle = summarize(await measure(SECONDS * 1000))
  // The load: orders at 1,000 a second on 400 price levels, each a depth update.
  let sent = 0
  let refusal = null
  let stop = false
  const sign = (q) => createHmac('sha256', bot.secret).update(q).digest('hex')
  // An account may hold only so many open orders: keep about 100 resting and cancel the
  // oldest for each new one, so every request (a placement or a cancel) is a depth update.
  const open = []
  const request = async (method, q) => {
    const query = `${q}&timestamp=${Date.now()}`
    const r = await fetch(`${bot.base}/api/v3/order?${query}&signature=${sign(query)}`, { method, headers: { 'X-MBX-APIKEY': bot.key } })
    if (!r.ok) {
      refusal ??= `${r.status} ${await r.text()}`
      return null
    }
    sent++
    return r.json()
  }
  const flood = (async () => {
    const started = Date.now()
    let i = 0
    while (!stop) {
      const due = Math.floor(((Date.now() - started) / 1000) * 1000)
      const batch = []
      while (i < due && batch.length < 50) {
        const n = i++
        if (open.length >= 100 && n % 2 === 1) {
          batch.push(request('DELETE', `symbol=ETHTUSD&orderId=${open.shift()}`))
          continue
        }
        const side = n % 4 < 2 ? 'BUY' : 'SELL'
        const cents = side === 'BUY' ? 180_000 + (n % 200) * 50 : 210_000 + (n % 200) * 50
        const price = `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`
        batch.push(
          request('POST', `symbol=ETHTUSD&side=${side}&type=LIMIT&timeInForce=GTC&quantity=0.001&price=${price}`).then((o) => o && open.push(o.orderId)),
        )
      }
      await Promise.all(batch)
      if (!batch.length) await sleep(5)
    }
  })()
  await sleep(500)
  const started = Date.now()
  const before = sent
  const busy = summarize(await measure(SECONDS * 1000))
  const rate = Math.round(((sent - before) * 1000) / (Date.now() - started))
  stop = true
  await flood
  if (refusal) console.error(`   an order was refused: ${refusal}`)
  await context.close()
  return { idle, under_load: { ...busy, depth_updates_per_s: rate }, p99_ratio_to_idle: +(busy.p99_ms / idle.p99_ms).toFixed(2) }
}

function print(report) {
  const f = report.first_view
  console.log('web app — first view of the trading screen (7 cold loads on loopback)')
  console.log(`  JavaScript: ${f.js_files} files, ${(f.js_gzipped_bytes / 1024).toFixed(1)} KiB as sent (gzip), ${(f.js_bytes / 1024).toFixed(1)} KiB unpacked   (target ≤ 250 KB)`)
  console.log(`  navigation → interactive: median ${f.interactive_ms_median} ms (min ${f.interactive_ms_min}, max ${f.interactive_ms_max})   (target ≤ 1000 ms)`)
  const { idle, under_load: load } = report.frames
  console.log(`frame intervals, idle (peer): p50 ${idle.p50_ms} ms, p99 ${idle.p99_ms} ms, ${idle.dropped} dropped of ${idle.frames}`)
  console.log(`frame intervals, ${load.depth_updates_per_s} depth updates/s: p50 ${load.p50_ms} ms, p99 ${load.p99_ms} ms, max ${load.max_ms} ms, ${load.dropped} dropped of ${load.frames}   (target p99 ≤ 16 ms of work, i.e. no dropped frame at 60 Hz; p99 ×${report.frames.p99_ratio_to_idle} idle)`)
}

main().catch((error) => {
  console.error(`FAILED: ${error.stack ?? error}`)
  process.exit(1)
})
