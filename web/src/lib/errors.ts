import { ApiError } from './api'

type T = (key: string, values?: Record<string, unknown>) => string

/** An error in words for people: the server's own message, framed by a translated sentence. */
export function explain(t: T, error: unknown): string {
  if (error instanceof ApiError) {
    if (error.code === '-2010' && /insufficient balance/i.test(error.message)) return t('errors.insufficient')
    if (error.code === '-2010' || error.code === '-1013') return t(`errors.${error.code}`, { msg: error.message })
    if (error.code === '-2011') return t('errors.-2011')
    return error.message
  }
  if (error instanceof TypeError && /fetch|network/i.test(error.message)) return t('errors.network')
  return String(error)
}
