// Calls of the operator program: `POST /api/{operation}` with a JSON object. The session lives in
// an HttpOnly cookie the program sets; every call carries the guard header it wants.

export interface Answer<T = Record<string, unknown>> {
  status: number
  data: T & { code?: string; message?: string }
}

export async function call<T = Record<string, unknown>>(operation: string, body: Record<string, unknown> = {}): Promise<Answer<T>> {
  const response = await fetch(`/api/${operation}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Coss-Admin': '1' },
    body: JSON.stringify(body),
    credentials: 'same-origin',
  })
  const data = (await response.json().catch(() => ({}))) as Answer<T>['data']
  return { status: response.status, data }
}

/** "2026-12-08 04:35:14" in UTC. */
export function when(ms: number | null | undefined): string {
  if (!ms) return ''
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19)
}
