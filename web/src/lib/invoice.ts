// Following a gateway invoice live: its checkout stream (a WebSocket that sends the payer's
// view at once and on every change), reopened while the invoice can still change.

export interface Due { asset: string; due: string; rate: string | null; confirmations: number; paid: string; confirmed: string; remaining: string; payment_uri: string | null }
export interface Payment { method: string; asset: string; amount: string; status: string; tx_hash: string | null; confirmations: number | null; seen_at: number }
export interface Invoice {
  id: string; status: string; flags: string[]; currency: string; price: string; tax: string; tip: string
  order_id: string | null; description: string | null; redirect_url: string | null; merchant: string; source: string
  created_at: number; expires_at: number; settled_at: number | null; address: string | null; assets: Due[]; payments: Payment[]
}

/** Calls `show` with every new view of invoice `id`, and `live` as the stream opens and
 * closes; returns the function that stops following. */
export function followInvoice(id: string, show: (invoice: Invoice) => void, live: (open: boolean) => void = () => {}): () => void {
  let socket: WebSocket | null = null
  let stopped = false
  let last: Invoice | null = null
  const open = () => {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
    socket = new WebSocket(`${scheme}://${location.host}/api/v1/checkout/${encodeURIComponent(id)}/stream`)
    socket.onopen = () => live(true)
    socket.onmessage = (message) => {
      last = JSON.parse(String(message.data)) as Invoice
      show(last)
    }
    socket.onclose = () => {
      live(false)
      if (!stopped && (!last || ['new', 'processing', 'expired'].includes(last.status))) setTimeout(open, 2000)
    }
  }
  open()
  return () => {
    stopped = true
    socket?.close()
  }
}
