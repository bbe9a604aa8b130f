import { defineStore } from 'pinia'
import { ref } from 'vue'
import { v1, ApiError, spot } from '../lib/api'

export interface Me {
  user_id: number
  email: string
  email_verified: boolean
  two_factor_enabled: boolean
  display_name: string | null
  country: string | null
  verification_level: number
}

/** Who is signed in (the session cookie is HttpOnly: `/api/v1/me` tells). */
export const useSession = defineStore('session', () => {
  const me = ref<Me | null>(null)
  const checked = ref(false)

  async function refresh(): Promise<Me | null> {
    try {
      me.value = await v1<Me>('GET', '/me')
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) throw e
      me.value = null
    } finally {
      checked.value = true
    }
    return me.value
  }

  async function login(email: string, password: string, totp?: string, recovery?: string) {
    await v1('POST', '/auth/login', {
      email,
      password,
      client: 'browser',
      ...(totp ? { totp_code: totp } : {}),
      ...(recovery ? { recovery_code: recovery } : {}),
    })
    await refresh()
  }

  async function logout() {
    try {
      await v1('POST', '/auth/logout')
    } finally {
      me.value = null
    }
  }

  /** A listen key for this session's user data stream (the account's one key, kept alive). */
  async function listenKey(): Promise<string> {
    const answer = await spot<{ listenKey: string }>('POST', 'userDataStream')
    return answer.listenKey
  }

  return { me, checked, refresh, login, logout, listenKey }
})
