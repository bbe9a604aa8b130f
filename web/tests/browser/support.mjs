// What the browser journey and the web benchmark share: the test password, an authenticator
// app (TOTP), waiting for a condition, and reading a verification link from the maildir.

import { createHmac } from 'node:crypto'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

export const PASSWORD = 'correct horse battery staple'

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** RFC 6238: HMAC-SHA1, 30-second steps, 6 digits; `at` in Unix seconds. */
export function totp(secret, at) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  let bits = ''
  for (const c of secret.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0')
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)))
  const counter = Buffer.alloc(8)
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30)))
  const digest = createHmac('sha1', key).update(counter).digest()
  const offset = digest[digest.length - 1] & 0x0f
  return String((digest.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0')
}

/** `check()` until it gives something truthy (every 300 ms); a check that throws fails at once. */
export async function waitFor(what, check, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const result = await check()
    if (result) return result
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(300)
  }
}

/** The token of the verification link mailed to `email`, from the maildir of `dataDir`. */
export function verificationToken(dataDir, email) {
  const dir = join(dataDir, 'mail', 'new')
  return waitFor(`${email}'s verification email`, () => {
    if (!existsSync(dir)) return null
    for (const name of readdirSync(dir).sort()) {
      const text = readFileSync(join(dir, name), 'utf8').replace(/=\r?\n/g, '').replace(/=3D/g, '=')
      if (text.includes(`To: ${email}`) && text.includes('verify-email?token=')) return text.split('verify-email?token=')[1].match(/^[A-Za-z0-9]+/)[0]
    }
    return null
  })
}
