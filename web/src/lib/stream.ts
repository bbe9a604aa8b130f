// One WebSocket to the platform's combined streams (`/stream?streams=a/b`), the same streams
// the public API offers, reconnecting with backoff. Subscriptions change with SUBSCRIBE /
// UNSUBSCRIBE on the open connection; every (re)connect calls `onOpen` so the caller can
// resynchronise what a gap may have lost (the order book takes a new snapshot).

export type Handler = (stream: string, data: any) => void

export class Streams {
  private ws: WebSocket | null = null
  private names = new Set<string>()
  private id = 1
  private closed = false
  private delay = 500

  constructor(
    private readonly onMessage: Handler,
    private readonly onOpen: () => void = () => {},
  ) {}

  private url(): string {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
    return `${scheme}://${location.host}/stream?streams=${[...this.names].join('/')}`
  }

  /** Listens to exactly these streams from now on. */
  set(names: string[]): void {
    const next = new Set(names)
    const add = [...next].filter((n) => !this.names.has(n))
    const drop = [...this.names].filter((n) => !next.has(n))
    this.names = next
    if (!this.ws || this.ws.readyState > WebSocket.OPEN) return this.connect()
    if (this.ws.readyState !== WebSocket.OPEN) return
    if (drop.length) this.send('UNSUBSCRIBE', drop)
    if (add.length) this.send('SUBSCRIBE', add)
  }

  private send(method: string, params: string[]) {
    this.ws?.send(JSON.stringify({ method, params, id: this.id++ }))
  }

  private connect() {
    if (this.closed || this.names.size === 0) return
    const ws = new WebSocket(this.url())
    this.ws = ws
    ws.onopen = () => {
      this.delay = 500
      this.onOpen()
    }
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data as string)
      if (message && typeof message.stream === 'string') this.onMessage(message.stream, message.data)
    }
    ws.onclose = () => {
      if (this.ws !== ws || this.closed) return
      this.ws = null
      setTimeout(() => this.connect(), this.delay)
      this.delay = Math.min(this.delay * 2, 10_000)
    }
  }

  close(): void {
    this.closed = true
    this.ws?.close()
    this.ws = null
  }
}

/** The signed-in user's own data (orders, fills, balances) over a listen key made for the session. */
export class UserStream {
  private ws: WebSocket | null = null
  private closed = false
  private keepAlive: ReturnType<typeof setInterval> | null = null

  constructor(
    private readonly key: () => Promise<string>,
    private readonly onEvent: (event: any) => void,
    private readonly onOpen: () => void = () => {},
  ) {
    void this.connect()
  }

  private async connect() {
    if (this.closed) return
    let key: string
    try {
      key = await this.key()
    } catch {
      setTimeout(() => void this.connect(), 3000)
      return
    }
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
    const ws = new WebSocket(`${scheme}://${location.host}/ws/${key}`)
    this.ws = ws
    ws.onopen = () => this.onOpen()
    ws.onmessage = (event) => this.onEvent(JSON.parse(event.data as string))
    ws.onclose = () => {
      if (this.ws !== ws || this.closed) return
      setTimeout(() => void this.connect(), 1000)
    }
    // Asking again keeps the key alive (one key per account).
    if (!this.keepAlive) this.keepAlive = setInterval(() => void this.key().catch(() => {}), 30 * 60_000)
  }

  close(): void {
    this.closed = true
    if (this.keepAlive) clearInterval(this.keepAlive)
    this.ws?.close()
  }
}
