//! The seeded workload, modelled on exchange-core's published benchmark: 2,000 funded
//! accounts, one market whose book is kept around 1,000 resting orders, and a stream of mostly
//! new limit orders (about 30% of them crossing), plus IOC, FOK, market, cancel and amend.
//!
//! The generator drives a scratch exchange core while it writes the stream, so every cancel or
//! amend names an order that is really resting at that point, and it writes the same stream as
//! plain order-book operations for the book-only and peer measurements.

use coss_core::{
    Command, Envelope, EventKind, Exchange, NewOrder, OrderKind, OrderRef, SelfTradePrevention,
    TimeInForce,
};
use coss_types::{AccountId, Amount, AssetId, MarketId, OrderId, Price, Qty, Side};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// The market every workload trades.
pub const MARKET: MarketId = MarketId(1);
/// Base asset (8 decimals).
pub const BTC: AssetId = AssetId(1);
/// Quote asset (6 decimals).
pub const USDT: AssetId = AssetId(2);
/// Accounts in the workload.
pub const ACCOUNTS: u64 = 2_000;
/// Resting orders the generator keeps the book around.
pub const TARGET_RESTING: usize = 1_000;
const MID_PRICE: u64 = 5_000_000; // 50,000.00 USDT in 0.01 ticks

/// One order-book operation, the book-level shadow of one core command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookOp {
    /// A good-till-cancelled limit order: match, rest the remainder.
    Limit {
        /// Id.
        id: OrderId,
        /// Side.
        side: Side,
        /// Price.
        price: Price,
        /// Quantity.
        qty: Qty,
    },
    /// Immediate-or-cancel: match up to the price, drop the rest.
    Ioc {
        /// Side.
        side: Side,
        /// Price.
        price: Price,
        /// Quantity.
        qty: Qty,
    },
    /// Fill-or-kill: match only if the whole quantity is available up to the price.
    Fok {
        /// Side.
        side: Side,
        /// Price.
        price: Price,
        /// Quantity.
        qty: Qty,
    },
    /// Market order by quantity.
    Market {
        /// Side.
        side: Side,
        /// Quantity.
        qty: Qty,
    },
    /// Cancel a resting order.
    Cancel {
        /// Id.
        id: OrderId,
    },
    /// Reduce a resting order's quantity, keeping priority.
    Reduce {
        /// Id.
        id: OrderId,
        /// Side.
        side: Side,
        /// Its (unchanged) price.
        price: Price,
        /// New quantity.
        qty: Qty,
    },
    /// Move a resting order to a new price (loses priority; may trade).
    Move {
        /// Id.
        id: OrderId,
        /// Side.
        side: Side,
        /// New price.
        price: Price,
        /// Quantity.
        qty: Qty,
    },
}

/// A generated workload: setup commands (untimed), then the measured stream.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Listing, funding and the initial book.
    pub setup: Vec<Envelope>,
    /// The measured commands.
    pub commands: Vec<Envelope>,
    /// The measured commands as book operations (same order, same ids).
    pub book_ops: Vec<BookOp>,
    /// The initial book as book operations.
    pub setup_book_ops: Vec<BookOp>,
}

/// The listing and funding commands every workload starts with.
#[must_use]
pub fn listing_and_funding(accounts: u64) -> Vec<Command> {
    let mut commands = vec![
        Command::ListAsset {
            asset: BTC,
            symbol: "BTC".into(),
            decimals: 8,
            fees_shared: true,
            withdrawal_fee: Amount(50_000),
        },
        Command::ListAsset {
            asset: USDT,
            symbol: "USDT".into(),
            decimals: 6,
            fees_shared: true,
            withdrawal_fee: Amount(1_000_000),
        },
        Command::ListMarket {
            market: MARKET,
            base: BTC,
            quote: USDT,
            lot_size: Amount(10_000),
            tick_size: Amount(10_000),
            min_notional: Amount(0),
        },
        Command::SetOpenOrderLimit {
            max_open_orders: 1_000_000,
        },
    ];
    for n in 0..accounts {
        let account = account_id(n);
        commands.push(Command::Deposit {
            account,
            asset: BTC,
            amount: Amount(10_000_000 * 100_000_000),
            reference: format!("seed-btc-{n}"),
        });
        commands.push(Command::Deposit {
            account,
            asset: USDT,
            amount: Amount(1_000_000_000_000 * 1_000_000),
            reference: format!("seed-usdt-{n}"),
        });
    }
    commands
}

/// The id of the n-th workload account.
#[must_use]
pub fn account_id(n: u64) -> AccountId {
    AccountId(coss_core::FIRST_USER_ACCOUNT.0 + n)
}

struct Generator {
    rng: ChaCha8Rng,
    exchange: Exchange,
    events: Vec<coss_core::Event>,
    /// Resting orders (id, account, side, price, qty), for picking cancel/amend targets.
    resting: Vec<(OrderId, AccountId, Side, Price, Qty)>,
    /// Order id → index in `resting`.
    position: BTreeMap<OrderId, usize>,
    time_ms: u64,
}

impl Generator {
    fn apply(&mut self, command: Command) -> Envelope {
        self.time_ms += 1;
        let envelope = Envelope {
            time_ms: self.time_ms,
            command,
        };
        self.events.clear();
        let _ = self.exchange.apply(&envelope, &mut self.events);
        let events = std::mem::take(&mut self.events);
        for event in &events {
            match &event.kind {
                EventKind::OrderAccepted { .. } => {}
                EventKind::Trade {
                    maker_order, qty, ..
                } => {
                    if let Some(at) = self.position.get(maker_order).copied() {
                        self.resting[at].4 = Qty(self.resting[at].4.0 - qty.0);
                    }
                }
                EventKind::OrderDone { order, .. } => self.forget(*order),
                EventKind::OrderAmended {
                    order, qty, price, ..
                } => {
                    if let Some(at) = self.position.get(order).copied() {
                        self.resting[at].3 = *price;
                        self.resting[at].4 = *qty;
                    }
                }
                _ => {}
            }
        }
        self.events = events;
        // Orders that rest after this command: anything accepted and not done.
        if let Command::PlaceOrder(new) = &envelope.command
            && let Some(order) = self.events.iter().find_map(|e| match e.kind {
                EventKind::OrderAccepted { order, .. } => Some(order),
                _ => None,
            })
            && let Some(resting) = self.exchange_resting(order)
        {
            let at = self.resting.len();
            self.resting
                .push((order, new.account, resting.0, resting.1, resting.2));
            self.position.insert(order, at);
        }
        // An amended order that re-entered may have traded or finished.
        if let Command::Amend {
            order: OrderRef::Id(id),
            ..
        } = &envelope.command
            && self.position.get(id).copied().is_some()
        {
            match self.exchange_resting(*id) {
                Some((_, price, qty)) => {
                    if let Some(at) = self.position.get(id).copied() {
                        self.resting[at].3 = price;
                        self.resting[at].4 = qty;
                    }
                }
                None => self.forget(*id),
            }
        }
        envelope
    }

    fn exchange_resting(&self, order: OrderId) -> Option<(Side, Price, Qty)> {
        self.exchange
            .resting_order(MARKET, order)
            .map(|o| (o.side, o.price, o.qty))
    }

    fn forget(&mut self, order: OrderId) {
        if let Some(at) = self.position.remove(&order) {
            self.resting.swap_remove(at);
            if let Some(moved) = self.resting.get(at) {
                self.position.insert(moved.0, at);
            }
        }
    }

    fn best(&self, side: Side) -> Option<Price> {
        self.exchange
            .depth(MARKET, side, 1)
            .first()
            .map(|level| level.price)
    }

    fn mid(&self) -> u64 {
        match (self.best(Side::Buy), self.best(Side::Sell)) {
            (Some(bid), Some(ask)) => (bid.0 + ask.0) / 2,
            (Some(bid), None) => bid.0 + 1,
            (None, Some(ask)) => ask.0.saturating_sub(1).max(1),
            (None, None) => MID_PRICE,
        }
    }

    fn account(&mut self) -> AccountId {
        account_id(self.rng.random_range(0..ACCOUNTS))
    }

    fn qty(&mut self) -> Qty {
        // Mostly small, sometimes large: 1–10 lots usually, up to 200.
        if self.rng.random_bool(0.9) {
            Qty(self.rng.random_range(1..=10))
        } else {
            Qty(self.rng.random_range(11..=200))
        }
    }

    /// A price that rests: on its own side of the mid, 1–100 ticks away.
    fn passive_price(&mut self, side: Side) -> Price {
        let mid = self.mid();
        let distance = 1 + self
            .rng
            .random_range(0..100u64)
            .min(self.rng.random_range(0..100u64));
        match side {
            Side::Buy => Price(mid.saturating_sub(distance).max(1)),
            Side::Sell => Price(mid + distance),
        }
    }

    /// A price that crosses: through the opposite best by 0–5 ticks.
    fn crossing_price(&mut self, side: Side) -> Price {
        let through = self.rng.random_range(0..=5u64);
        match side {
            Side::Buy => Price(self.best(Side::Sell).map_or(self.mid(), |p| p.0) + through),
            Side::Sell => Price(
                self.best(Side::Buy)
                    .map_or(self.mid(), |p| p.0)
                    .saturating_sub(through)
                    .max(1),
            ),
        }
    }

    fn side(&mut self) -> Side {
        if self.rng.random_bool(0.5) {
            Side::Buy
        } else {
            Side::Sell
        }
    }

    fn place(&mut self, account: AccountId, side: Side, kind: OrderKind) -> Envelope {
        self.apply(Command::PlaceOrder(NewOrder {
            account,
            market: MARKET,
            side,
            kind,
            client_id: None,
            stp: SelfTradePrevention::None,
        }))
    }

    fn next_order_id(&self) -> OrderId {
        OrderId(self.exchange.next_order_id())
    }

    fn passive_limit(&mut self) -> (Envelope, BookOp) {
        self.gtc_limit(false)
    }

    /// A good-till-cancelled limit order that rests, or that crosses the book.
    fn gtc_limit(&mut self, crossing: bool) -> (Envelope, BookOp) {
        let (account, side) = (self.account(), self.side());
        let price = if crossing {
            self.crossing_price(side)
        } else {
            self.passive_price(side)
        };
        let qty = self.qty();
        let id = self.next_order_id();
        let kind = OrderKind::Limit {
            price,
            qty,
            tif: TimeInForce::Gtc,
        };
        (
            self.place(account, side, kind),
            BookOp::Limit {
                id,
                side,
                price,
                qty,
            },
        )
    }

    fn step(&mut self) -> (Envelope, BookOp) {
        let roll = self.rng.random_range(0..100u32);
        let crowded = self.resting.len() > TARGET_RESTING + TARGET_RESTING / 10;
        let sparse = self.resting.len() < TARGET_RESTING - TARGET_RESTING / 10;
        match roll {
            // New limit orders: 30% of them cross.
            0..45 if !crowded => {
                let crossing = self.rng.random_bool(0.3);
                self.gtc_limit(crossing)
            }
            45..55 => {
                let (account, side) = (self.account(), self.side());
                let (price, qty) = (self.crossing_price(side), self.qty());
                let kind = OrderKind::Limit {
                    price,
                    qty,
                    tif: TimeInForce::Ioc,
                };
                (
                    self.place(account, side, kind),
                    BookOp::Ioc { side, price, qty },
                )
            }
            55..57 => {
                let (account, side) = (self.account(), self.side());
                let (price, qty) = (self.crossing_price(side), self.qty());
                let kind = OrderKind::Limit {
                    price,
                    qty,
                    tif: TimeInForce::Fok,
                };
                (
                    self.place(account, side, kind),
                    BookOp::Fok { side, price, qty },
                )
            }
            57..60 => {
                let (account, side) = (self.account(), self.side());
                let qty = self.qty();
                (
                    self.place(account, side, OrderKind::Market { qty }),
                    BookOp::Market { side, qty },
                )
            }
            _ if sparse || self.resting.is_empty() => self.passive_limit(),
            60..80 | 0..45 => {
                let at = self.rng.random_range(0..self.resting.len());
                let (id, account, ..) = self.resting[at];
                let command = Command::Cancel {
                    account,
                    market: MARKET,
                    order: OrderRef::Id(id),
                };
                (self.apply(command), BookOp::Cancel { id })
            }
            _ => {
                let at = self.rng.random_range(0..self.resting.len());
                let (id, account, side, price, qty) = self.resting[at];
                if qty.0 > 1 && self.rng.random_bool(0.5) {
                    let new_qty = Qty(self.rng.random_range(1..qty.0));
                    let command = Command::Amend {
                        account,
                        market: MARKET,
                        order: OrderRef::Id(id),
                        qty: new_qty,
                        price,
                    };
                    (
                        self.apply(command),
                        BookOp::Reduce {
                            id,
                            side,
                            price,
                            qty: new_qty,
                        },
                    )
                } else {
                    let mut new_price = self.passive_price(side);
                    if new_price == price {
                        new_price = Price(price.0 + 1);
                    }
                    let command = Command::Amend {
                        account,
                        market: MARKET,
                        order: OrderRef::Id(id),
                        qty,
                        price: new_price,
                    };
                    (
                        self.apply(command),
                        BookOp::Move {
                            id,
                            side,
                            price: new_price,
                            qty,
                        },
                    )
                }
            }
        }
    }
}

/// Generates `commands` measured commands from `seed`.
#[must_use]
pub fn generate(commands: usize, seed: u64) -> Workload {
    let mut generator = Generator {
        rng: ChaCha8Rng::seed_from_u64(seed),
        exchange: Exchange::new(),
        events: Vec::new(),
        resting: Vec::new(),
        position: BTreeMap::new(),
        time_ms: 0,
    };
    let mut setup: Vec<Envelope> = listing_and_funding(ACCOUNTS)
        .into_iter()
        .map(|command| generator.apply(command))
        .collect();
    let mut setup_book_ops = Vec::new();
    while generator.resting.len() < TARGET_RESTING {
        let (envelope, op) = generator.passive_limit();
        setup.push(envelope);
        setup_book_ops.push(op);
    }
    let mut measured = Vec::with_capacity(commands);
    let mut book_ops = Vec::with_capacity(commands);
    for _ in 0..commands {
        let (envelope, op) = generator.step();
        measured.push(envelope);
        book_ops.push(op);
    }
    Workload {
        setup,
        commands: measured,
        book_ops,
        setup_book_ops,
    }
}
