// The back office in Debian's Chromium (playwright-core), against a real `coss up` and a real
// `coss admin serve` beside it. The first superadmin (made with `coss admin bootstrap`) signs in
// with TOTP, invites an admin who sets up her account from the one-time link; root finds a user
// and locks them; a large withdrawal waits for operators: root approves it first, the admin
// approves it as the second operator and it is signed and sent; root submits a market listing
// and the admin approves it; the audit log shows all of it and its chain verifies. axe-core on
// every screen, no console error.
//
// node web/tests/browser/admin.mjs --console URL --platform URL --data-dir DIR --root-email E
//   --root-secret S --chromium PATH --artifacts DIR

import { chromium } from 'playwright-core'
import { readFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import { PASSWORD, sleep, totp, verificationToken, waitFor } from './support.mjs'

const { values: args } = parseArgs({
  options: {
    console: { type: 'string' },
    platform: { type: 'string' },
    'data-dir': { type: 'string' },
    'root-email': { type: 'string' },
    'root-secret': { type: 'string' },
    'root-password': { type: 'string' },
    chromium: { type: 'string' },
    artifacts: { type: 'string' },
  },
})
const CONSOLE = args.console
const PLATFORM = args.platform
const ARTIFACTS = args.artifacts ?? 'artifacts'
const require = createRequire(import.meta.url)
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8')
const OPERATOR_PASSWORD = 'a long operator passphrase'
const pages = []
const problems = []

const step = (text) => console.log(`== ${text}`)
/** A code for an operator: the step `ahead` 30-second steps from now (each code works once). */
const code = (secret, ahead = 0) => totp(secret, Date.now() / 1000 + ahead * 30)

function watch(page, who) {
  pages.push([who, page])
  page.on('console', (message) => {
    // A signed-out page asks `me` and hears 401, and the four-eyes step is refused on purpose
    // (403): expected, and the browser logs them.
    if (message.type() === 'error' && !/status of 40[13]/.test(message.text())) problems.push(`${who} console: ${message.text()}`)
  })
  page.on('pageerror', (error) => problems.push(`${who} page error: ${error.message}`))
}

async function axe(page, screen) {
  await page.evaluate(AXE)
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }),
  )
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
  for (const v of bad) problems.push(`axe on ${screen}: ${v.id}: ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`)
  console.log(`   axe on ${screen}: ${result.violations.length} violations, ${bad.length} serious or critical`)
}

/** The platform's public API as a user's app calls it. */
async function api(method, path, body, token) {
  const headers = { 'Content-Type': 'application/json' }
  if (token) headers.Authorization = `Bearer ${token}`
  const response = await fetch(`${PLATFORM}${path}`, { method, headers, body: body ? JSON.stringify(body) : undefined })
  const text = await response.text()
  let data = null
  try {
    data = JSON.parse(text)
  } catch {
    data = text
  }
  return { status: response.status, data }
}

/** A verified user signed in (with TOTP if asked): their token and seed. */
async function user(email, withTotp) {
  await api('POST', '/api/v1/auth/signup', { email, password: PASSWORD })
  const token = await verificationToken(args['data-dir'], email)
  const verified = await api('POST', '/api/v1/auth/verify-email', { token })
  if (verified.status >= 300) throw new Error(`verify ${email}: ${JSON.stringify(verified)}`)
  let login = await api('POST', '/api/v1/auth/login', { email, password: PASSWORD })
  let seed = null
  if (withTotp) {
    const enrol = await api('POST', '/api/v1/auth/2fa/totp', { password: PASSWORD }, login.data.access_token)
    seed = enrol.data.secret
    const confirmed = await api('POST', '/api/v1/auth/2fa/totp/confirm', { code: totp(seed, Date.now() / 1000 - 30) }, login.data.access_token)
    if (confirmed.status >= 300) throw new Error(`2fa ${email}: ${JSON.stringify(confirmed)}`)
    login = await api('POST', '/api/v1/auth/login', { email, password: PASSWORD, totp_code: totp(seed, Date.now() / 1000) })
  }
  if (login.status !== 200) throw new Error(`login ${email}: ${JSON.stringify(login)}`)
  return { email, token: login.data.access_token, seed }
}

async function signIn(page, email, secret, ahead) {
  await page.goto(CONSOLE)
  await page.waitForSelector('[data-test=login-email]')
  await axe(page, 'sign-in')
  await page.fill('[data-test=login-email]', email)
  await page.fill('[data-test=login-password]', OPERATOR_PASSWORD)
  await page.fill('[data-test=login-code]', code(secret, ahead))
  await page.click('[data-test=login-submit]')
  await page.waitForSelector('[data-test=who]')
}

async function tab(page, id) {
  await page.click(`[data-test=tab-${id}]`)
  await page.waitForSelector(`#${id}-title`)
}

const browser = await chromium.launch({ executablePath: args.chromium, args: ['--no-sandbox'] })
try {
  const rootPage = await (await browser.newContext()).newPage()
  watch(rootPage, 'root')

  step('a user with a large withdrawal, and one to lock')
  const whale = await user('whale@example.com', true)
  const suspect = await user('suspect@example.com', false)
  const funds = await api('POST', '/api/v1/wallet/test-funds', {}, whale.token)
  if (funds.status >= 300) throw new Error(`test funds: ${JSON.stringify(funds)}`)
  await waitFor('the test funds credited', async () => {
    const balances = await api('GET', '/api/v1/wallet/balances', null, whale.token)
    const eth = (balances.data ?? []).find?.((b) => b.asset === 'ETH')
    return eth && Number(eth.available) >= 10
  })
  const withdrawal = await api('POST', '/api/v1/wallet/withdrawals', {
    asset: 'ETH', address: '0x00000000000000000000000000000000000000b7', amount: '6', code: totp(whale.seed, Date.now() / 1000 + 30),
  }, whale.token)
  if (withdrawal.data.status !== 'review') throw new Error(`the large withdrawal did not wait: ${JSON.stringify(withdrawal)}`)
  const wid = withdrawal.data.id

  step('root signs in with TOTP and invites an admin')
  await signIn(rootPage, args['root-email'], args['root-secret'], 0)
  await tab(rootPage, 'operators')
  await axe(rootPage, 'operators')
  await rootPage.fill('[data-test=invite-email]', 'alice@coss.example')
  await rootPage.selectOption('[data-test=invite-role]', 'admin')
  await rootPage.click('[data-test=invite-submit]')
  const link = await (await rootPage.waitForSelector('[data-test=setup-link]')).innerText()

  step('the admin sets up her account from the link and signs in')
  const alicePage = await (await browser.newContext()).newPage()
  watch(alicePage, 'alice')
  await alicePage.goto(link)
  await alicePage.click('[data-test=setup-begin]')
  const secret = (await (await alicePage.waitForSelector('[data-test=setup-secret]')).innerText()).trim()
  await axe(alicePage, 'set-up')
  await alicePage.fill('[data-test=setup-password]', OPERATOR_PASSWORD)
  await alicePage.fill('[data-test=setup-code]', code(secret, -1))
  await alicePage.click('[data-test=setup-activate]')
  await alicePage.waitForSelector('[data-test=activated]')
  await signIn(alicePage, 'alice@coss.example', secret, 0)

  step('root finds the suspect and locks the account')
  await tab(rootPage, 'users')
  await rootPage.fill('[data-test=user-query]', 'suspect')
  await rootPage.click('[data-test=user-search]')
  await rootPage.waitForSelector('[data-test=user-row]')
  const masked = await rootPage.innerText('[data-test=user-row]')
  if (!masked.includes('s***@example.com')) throw new Error(`personal data shown unmasked: ${masked}`)
  await rootPage.click('[data-test^=user-open-]')
  await rootPage.waitForSelector('[data-test=user-detail]')
  await axe(rootPage, 'user')
  await rootPage.fill('[data-test=user-reason]', 'reported by the fraud desk')
  await rootPage.click('[data-test=user-lock]')
  await waitFor('the lock shown', async () => (await rootPage.innerText('[data-test=user-locked]')) === 'locked', 10_000)
  const refused = await api('POST', '/api/v1/auth/login', { email: suspect.email, password: PASSWORD })
  if (refused.data.code !== 'account_locked') throw new Error(`a locked user signed in: ${JSON.stringify(refused)}`)

  step('root approves the large withdrawal first; it still waits')
  await tab(rootPage, 'withdrawals')
  await rootPage.waitForSelector(`[data-test=withdrawal-${wid}]`)
  await axe(rootPage, 'withdrawals')
  await rootPage.click(`[data-test=approve-${wid}]`)
  await waitFor('one approval', async () => (await rootPage.innerText(`[data-test=approvals-${wid}]`)) === '1', 10_000)
  await rootPage.click(`[data-test=approve-${wid}]`)
  const same = await (await rootPage.waitForSelector('[data-test=error]')).innerText()
  if (!same.includes('four_eyes')) throw new Error(`the same operator approved twice: ${same}`)

  step('the admin approves it as the second operator: it is signed and sent')
  await tab(alicePage, 'withdrawals')
  await alicePage.click(`[data-test=approve-${wid}]`)
  await alicePage.waitForSelector('[data-test=review-empty]')
  await waitFor('the withdrawal on chain', async () => {
    const seen = await api('GET', `/api/v1/wallet/withdrawals/${wid}`, null, whale.token)
    return ['broadcast', 'settled'].includes(seen.data.status)
  })

  step('root submits a market listing; the admin approves it')
  await tab(rootPage, 'markets')
  await axe(rootPage, 'markets')
  for (const [field, value] of [['id', '7'], ['base', 'ETH'], ['quote', 'COSS'], ['lot', '0.0001'], ['tick', '0.01'], ['min', '1']]) {
    await rootPage.fill(`[data-test=list-${field}]`, value)
  }
  await rootPage.click('[data-test=list-submit]')
  const submitted = await (await rootPage.waitForSelector('[data-test=notice]')).innerText()
  const request = submitted.match(/Request #(\d+)/)[1]
  await tab(alicePage, 'requests')
  await axe(alicePage, 'requests')
  await alicePage.click(`[data-test=request-approve-${request}]`)
  await waitFor('the listing carried out', async () => (await alicePage.innerText(`[data-test=request-status-${request}]`)) === 'executed', 10_000)
  await tab(rootPage, 'markets')
  await rootPage.waitForSelector('[data-test=market-ETHCOSS]')

  step('root sees the money: what is owed against what the chain holds')
  await tab(rootPage, 'money')
  await rootPage.waitForSelector('[data-test=money-ETH]')
  await axe(rootPage, 'money')
  const covered = await rootPage.innerText('[data-test=shortfall-ETH]')
  if (covered !== 'covered') throw new Error(`ETH on chain should cover what is owed: ${covered}`)

  step('the audit log shows all of it, and its chain verifies')
  await tab(rootPage, 'audit')
  await axe(rootPage, 'audit')
  const log = await rootPage.innerText('table')
  for (const [who, what] of [
    [args['root-email'], 'auth.login'],
    [args['root-email'], 'operators.invite'],
    ['alice@coss.example', 'auth.login'],
    [args['root-email'], 'users.lock'],
    [args['root-email'], 'withdrawals.approve'],
    ['alice@coss.example', 'withdrawals.approve'],
    [args['root-email'], 'markets.list_market'],
    ['alice@coss.example', 'requests.approve'],
  ]) {
    if (!log.split('\n').some((line) => line.includes(who) && line.includes(what))) throw new Error(`the audit log lacks ${what} by ${who}`)
  }
  if (!log.split('\n').some((line) => line.includes('withdrawals.approve') && line.includes('denied'))) throw new Error('the refused second approval is not in the audit log')
  await rootPage.click('[data-test=audit-verify]')
  const verdict = await (await rootPage.waitForSelector('[data-test=notice]')).innerText()
  if (!verdict.includes('intact')) throw new Error(`the audit chain: ${verdict}`)
  await rootPage.click('[data-test=audit-export]')
  await rootPage.waitForSelector('[data-test=audit-download]')

  step('signing out ends the session')
  await rootPage.click('[data-test=sign-out]')
  await rootPage.waitForSelector('[data-test=login-email]')
  await sleep(200)

  if (problems.length) throw new Error(`problems:\n${problems.join('\n')}`)
  console.log('OK: every step held')
} catch (error) {
  mkdirSync(ARTIFACTS, { recursive: true })
  for (const [who, page] of pages) await page.screenshot({ path: join(ARTIFACTS, `admin-${who}.png`), fullPage: true }).catch(() => {})
  console.error(error.stack ?? String(error))
  if (problems.length) console.error(problems.join('\n'))
  process.exitCode = 1
} finally {
  await browser.close()
}
