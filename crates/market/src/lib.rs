//! Projections of the exchange core's events: what the trading APIs read. [`Projection`] is a
//! pure function of the event stream (`apply` one event at a time, no clock, no I/O): order
//! books by price level with a per-market update id that depth streams and snapshots share,
//! every trade, candles in every Binance interval, each order's life (status, executed
//! quantity and quote, times), and each account's balances. [`MarketService`] holds one,
//! applied in place by the engine's journal writer through its [`coss_engine::EventFeed`] (a
//! full replay of the journal at start, then each durable group before its callers hear
//! back, so a caller holding a receipt reads its own writes), and publishes what changed to
//! subscribers. Since
//! the engine replays the journal into the feed at every start, the projection is rebuilt from
//! the journal whenever the process starts; it never holds a balance of record.

mod candles;
mod history;
mod model;
mod projection;
mod rows;
mod service;

pub use candles::Interval;
pub use history::{HISTORY_BACKLOG, spawn_history};
pub use model::*;
pub use projection::{Projection, Revenue, week_start};
pub use rows::{candle_row, candles_from_minutes};
pub use service::{MarketService, Published};

use coss_core::{
    DoneReason, Event, EventKind, NewOrder, OrderKind, SelfTradePrevention, TimeInForce,
};
use coss_types::{AccountId, Amount, AssetId, ClientOrderId, MarketId, OrderId, Price, Qty, Side};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
