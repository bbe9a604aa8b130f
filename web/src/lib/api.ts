// The platform's HTTP APIs as the browser uses them: COSS's own `/api/v1` (JSON, the session
// cookie, the CSRF token echoed on every change), the trading calls at `/api/v1/spot/…` (the
// Binance-compatible endpoints, authenticated by the same session) and the public `/api/v3`
// market data. Every refusal becomes an `ApiError` with the server's stable code and words.

/** The page's CSRF token, from the cookie the sign-in set (readable by design, not HttpOnly). */
export function csrfToken(): string {
  for (const part of document.cookie.split(';')) {
    const [name, value] = part.trim().split('=')
    if (name === '__Host-coss_csrf') return value ?? ''
  }
  return ''
}

export class ApiError extends Error {
  constructor(
    /** `email_taken`-style code of `/api/v1`, or Binance's negative number as text. */
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message)
  }
}

async function answer<T>(response: Response): Promise<T> {
  const text = await response.text()
  let body: unknown = null
  try {
    body = text ? JSON.parse(text) : null
  } catch {
    body = null
  }
  if (!response.ok) {
    const b = (body ?? {}) as { code?: string | number; message?: string; msg?: string; error?: string; error_description?: string }
    const code = String(b.code ?? b.error ?? response.status)
    const message = b.message ?? b.msg ?? b.error_description ?? (text || response.statusText)
    throw new ApiError(code, message, response.status)
  }
  return body as T
}

function changeHeaders(json: boolean): HeadersInit {
  const headers: Record<string, string> = { 'X-CSRF-Token': csrfToken() }
  if (json) headers['Content-Type'] = 'application/json'
  return headers
}

/** `/api/v1`: GET with a query, or a change with a JSON body (CSRF token attached). */
export async function v1<T>(method: string, path: string, body?: unknown, extra?: Record<string, string>): Promise<T> {
  const init: RequestInit = { method, credentials: 'same-origin' }
  if (method !== 'GET') {
    init.headers = { ...changeHeaders(body !== undefined), ...(extra ?? {}) }
    if (body !== undefined) init.body = JSON.stringify(body)
  }
  return answer<T>(await fetch(`/api/v1${path}`, init))
}

function query(params: Record<string, string | undefined>): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, v)
  return q.toString()
}

/** A trading call (`/api/v1/spot/order` …): Binance's parameters, the session's authority. */
export async function spot<T>(method: string, path: string, params: Record<string, string | undefined> = {}): Promise<T> {
  const q = query(params)
  if (method === 'GET') return answer<T>(await fetch(`/api/v1/spot/${path}${q ? `?${q}` : ''}`, { credentials: 'same-origin' }))
  return answer<T>(
    await fetch(`/api/v1/spot/${path}`, {
      method,
      credentials: 'same-origin',
      headers: { ...changeHeaders(false), 'Content-Type': 'application/x-www-form-urlencoded' },
      body: q,
    }),
  )
}

/** Public market data (`/api/v3/depth` …). */
export async function market<T>(path: string, params: Record<string, string | undefined> = {}): Promise<T> {
  const q = query(params)
  return answer<T>(await fetch(`/api/v3/${path}${q ? `?${q}` : ''}`))
}
