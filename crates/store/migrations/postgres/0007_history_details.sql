-- What an order's answer needs beyond its state, so an order that has left the market
-- projection's memory can be answered from the history alone.
ALTER TABLE orders ADD COLUMN time_in_force TEXT;
ALTER TABLE orders ADD COLUMN stop_price BIGINT;
ALTER TABLE orders ADD COLUMN quote_order_qty TEXT;
ALTER TABLE orders ADD COLUMN stp TEXT;
ALTER TABLE orders ADD COLUMN working_ms BIGINT;

-- And what a kline needs beyond the candle, so klines older than memory come from here.
ALTER TABLE candles ADD COLUMN taker_buy_volume TEXT;
ALTER TABLE candles ADD COLUMN taker_buy_quote TEXT;
