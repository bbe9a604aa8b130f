//! A limit order book with strict price-time priority and nothing else: no balances, no fees,
//! no clock. It is the matching heart of the exchange core (`coss-core`), which drives it through
//! the low-level cursor API (`front`, `fill_front`, `remove_front`), and it is also a library of
//! its own (`execute_limit`, `execute_market`, `cancel`, `reduce`) so it can be measured
//! head-to-head against other engines. Each resting order carries a small `Copy` payload chosen
//! by the user of the book (the core stores the owning account there).
//!
//! Layout, for speed and a small memory footprint: orders live in one slab (`Vec`) linked into a
//! FIFO per price level; each side keeps its levels in a `Vec` sorted so that the best price is
//! the last element (the busy end, where inserts and removals cost nothing to shift); an order id
//! finds its slot through one hash map with a fixed, deterministic hasher.
#![deny(
    clippy::float_arithmetic,
    clippy::float_cmp,
    clippy::cast_precision_loss
)]

use coss_types::{OrderId, Price, Qty, Side};
use rustc_hash::FxHashMap;

const NIL: u32 = u32::MAX;

/// Why the book refused an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    /// An order with this id is already resting.
    #[error("order id is already in the book")]
    DuplicateOrderId,
    /// No resting order has this id.
    #[error("no such order in the book")]
    UnknownOrder,
    /// Quantity zero, or a reduction that does not reduce.
    #[error("invalid quantity")]
    InvalidQuantity,
    /// The slab is full (more than `u32::MAX - 1` resting orders).
    #[error("order book is full")]
    Full,
}

/// A resting order as seen from outside the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestingOrder<P> {
    /// Its id.
    pub id: OrderId,
    /// Its side.
    pub side: Side,
    /// Its limit price.
    pub price: Price,
    /// Its remaining quantity.
    pub qty: Qty,
    /// What its owner attached to it.
    pub payload: P,
}

/// One execution between a resting (maker) order and an incoming (taker) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill<P> {
    /// The resting order.
    pub maker: OrderId,
    /// The maker's payload.
    pub maker_payload: P,
    /// The execution price: always the maker's price.
    pub price: Price,
    /// The executed quantity.
    pub qty: Qty,
    /// Whether the maker order is now completely filled (and gone from the book).
    pub maker_done: bool,
}

/// One price level of the book's depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthLevel {
    /// The level's price.
    pub price: Price,
    /// The total resting quantity at that price (`u64::MAX` if it is more than that).
    pub qty: Qty,
    /// How many orders rest at that price.
    pub orders: u32,
}

#[derive(Debug, Clone, Copy)]
struct Slot<P> {
    id: OrderId,
    price: Price,
    qty: Qty,
    prev: u32,
    next: u32,
    side: Side,
    payload: P,
}

#[derive(Debug, Clone, Copy)]
struct Level {
    /// Sort key: the price for bids, `u64::MAX - price` for asks, so the best level is the
    /// largest key on both sides and sits at the end of the vector.
    key: u64,
    head: u32,
    tail: u32,
    /// Total open quantity. Wider than an order's: many orders of up to `u64::MAX` lots each
    /// may rest at one price, and their sum must not overflow.
    qty: u128,
    orders: u32,
}

#[derive(Debug, Clone, Default)]
struct Ladder {
    levels: Vec<Level>,
}

fn key_of(side: Side, price: Price) -> u64 {
    match side {
        Side::Buy => price.0,
        Side::Sell => u64::MAX - price.0,
    }
}

fn price_of(side: Side, key: u64) -> Price {
    match side {
        Side::Buy => Price(key),
        Side::Sell => Price(u64::MAX - key),
    }
}

impl Ladder {
    fn find(&self, key: u64) -> Result<usize, usize> {
        // The busy end is the best price (the end of the vector): look there first.
        let n = self.levels.len();
        if n > 0 && self.levels[n - 1].key == key {
            return Ok(n - 1);
        }
        self.levels.binary_search_by(|l| l.key.cmp(&key))
    }
}

/// A price-time priority order book for one market.
#[derive(Debug, Clone)]
pub struct OrderBook<P> {
    bids: Ladder,
    asks: Ladder,
    slots: Vec<Slot<P>>,
    free_head: u32,
    index: FxHashMap<OrderId, u32>,
}

impl<P: Copy> Default for OrderBook<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Copy> OrderBook<P> {
    /// An empty book.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty book with room for `orders` resting orders before it reallocates.
    #[must_use]
    pub fn with_capacity(orders: usize) -> Self {
        OrderBook {
            bids: Ladder::default(),
            asks: Ladder::default(),
            slots: Vec::with_capacity(orders),
            free_head: NIL,
            index: FxHashMap::with_capacity_and_hasher(orders, Default::default()),
        }
    }

    /// How many orders rest in the book.
    #[must_use]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no order rests in the book.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn ladder(&self, side: Side) -> &Ladder {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn ladder_mut(&mut self, side: Side) -> &mut Ladder {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// The best price on `side` (highest bid, lowest ask).
    #[inline]
    #[must_use]
    pub fn best(&self, side: Side) -> Option<Price> {
        self.ladder(side)
            .levels
            .last()
            .map(|l| price_of(side, l.key))
    }

    /// The order with the highest priority on `side`: first in time at the best price.
    #[inline]
    #[must_use]
    pub fn front(&self, side: Side) -> Option<RestingOrder<P>> {
        let level = self.ladder(side).levels.last()?;
        let slot = &self.slots[level.head as usize];
        Some(RestingOrder {
            id: slot.id,
            side,
            price: slot.price,
            qty: slot.qty,
            payload: slot.payload,
        })
    }

    /// A resting order by id.
    #[must_use]
    pub fn get(&self, id: OrderId) -> Option<RestingOrder<P>> {
        let &slot_index = self.index.get(&id)?;
        let slot = &self.slots[slot_index as usize];
        Some(RestingOrder {
            id,
            side: slot.side,
            price: slot.price,
            qty: slot.qty,
            payload: slot.payload,
        })
    }

    /// Rests an order at the back of its price level without matching it.
    ///
    /// The caller is responsible for not resting an order that crosses the book (use
    /// [`OrderBook::execute_limit`] for that).
    pub fn add(
        &mut self,
        id: OrderId,
        side: Side,
        price: Price,
        qty: Qty,
        payload: P,
    ) -> Result<(), BookError> {
        if qty.0 == 0 {
            return Err(BookError::InvalidQuantity);
        }
        let slot = Slot {
            id,
            price,
            qty,
            prev: NIL,
            next: NIL,
            side,
            payload,
        };
        let slot_index = if self.free_head != NIL {
            self.free_head
        } else {
            u32::try_from(self.slots.len())
                .ok()
                .filter(|&i| i != NIL)
                .ok_or(BookError::Full)?
        };
        match self.index.entry(id) {
            std::collections::hash_map::Entry::Occupied(_) => {
                return Err(BookError::DuplicateOrderId);
            }
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(slot_index);
            }
        }
        if slot_index == self.free_head {
            self.free_head = self.slots[slot_index as usize].next;
            self.slots[slot_index as usize] = slot;
        } else {
            self.slots.push(slot);
        }
        let key = key_of(side, price);
        let ladder = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        match ladder.find(key) {
            Ok(at) => {
                let level = &mut ladder.levels[at];
                let tail = level.tail;
                level.tail = slot_index;
                level.qty += u128::from(qty.0);
                level.orders += 1;
                self.slots[tail as usize].next = slot_index;
                self.slots[slot_index as usize].prev = tail;
            }
            Err(at) => ladder.levels.insert(
                at,
                Level {
                    key,
                    head: slot_index,
                    tail: slot_index,
                    qty: u128::from(qty.0),
                    orders: 1,
                },
            ),
        }
        Ok(())
    }

    /// Removes a resting order, returning it.
    pub fn cancel(&mut self, id: OrderId) -> Option<RestingOrder<P>> {
        let slot_index = self.index.remove(&id)?;
        Some(self.unlink(slot_index))
    }

    /// Reduces a resting order's quantity to `new_qty` (strictly less, not zero), keeping its
    /// time priority.
    pub fn reduce(&mut self, id: OrderId, new_qty: Qty) -> Result<(), BookError> {
        let &slot_index = self.index.get(&id).ok_or(BookError::UnknownOrder)?;
        let slot = &mut self.slots[slot_index as usize];
        if new_qty.0 == 0 || new_qty.0 >= slot.qty.0 {
            return Err(BookError::InvalidQuantity);
        }
        let delta = slot.qty.0 - new_qty.0;
        slot.qty = new_qty;
        let (side, key) = (slot.side, key_of(slot.side, slot.price));
        let ladder = self.ladder_mut(side);
        if let Ok(at) = ladder.find(key) {
            ladder.levels[at].qty -= u128::from(delta);
        }
        Ok(())
    }

    /// Executes `qty` against the front order of `side` (the maker side). `qty` must not exceed
    /// the front order's quantity; a completely filled maker leaves the book.
    pub fn fill_front(&mut self, side: Side, qty: Qty) -> Option<Fill<P>> {
        let ladder = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let last = ladder.levels.len().checked_sub(1)?;
        let level = &mut ladder.levels[last];
        let head = level.head;
        let slot = &mut self.slots[head as usize];
        if qty.0 == 0 || qty.0 > slot.qty.0 {
            return None;
        }
        let fill = Fill {
            maker: slot.id,
            maker_payload: slot.payload,
            price: slot.price,
            qty,
            maker_done: qty == slot.qty,
        };
        if fill.maker_done {
            self.index.remove(&fill.maker);
            self.unlink(head);
        } else {
            slot.qty.0 -= qty.0;
            level.qty -= u128::from(qty.0);
        }
        Some(fill)
    }

    /// Removes the front order of `side` (e.g. when self-trade prevention expires a maker).
    pub fn remove_front(&mut self, side: Side) -> Option<RestingOrder<P>> {
        let front = self.front(side)?;
        self.cancel(front.id)
    }

    fn unlink(&mut self, slot_index: u32) -> RestingOrder<P> {
        let slot = self.slots[slot_index as usize];
        if slot.prev != NIL {
            self.slots[slot.prev as usize].next = slot.next;
        }
        if slot.next != NIL {
            self.slots[slot.next as usize].prev = slot.prev;
        }
        let key = key_of(slot.side, slot.price);
        let ladder = match slot.side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        if let Ok(at) = ladder.find(key) {
            let level = &mut ladder.levels[at];
            if level.orders == 1 {
                ladder.levels.remove(at);
            } else {
                level.orders -= 1;
                level.qty -= u128::from(slot.qty.0);
                if level.head == slot_index {
                    level.head = slot.next;
                }
                if level.tail == slot_index {
                    level.tail = slot.prev;
                }
            }
        }
        self.slots[slot_index as usize].next = self.free_head;
        self.free_head = slot_index;
        RestingOrder {
            id: slot.id,
            side: slot.side,
            price: slot.price,
            qty: slot.qty,
            payload: slot.payload,
        }
    }

    /// The best `levels` price levels of `side`, best first.
    #[must_use]
    pub fn depth(&self, side: Side, levels: usize) -> Vec<DepthLevel> {
        self.ladder(side)
            .levels
            .iter()
            .rev()
            .take(levels)
            .map(|l| DepthLevel {
                price: price_of(side, l.key),
                qty: Qty(u64::try_from(l.qty).unwrap_or(u64::MAX)),
                orders: l.orders,
            })
            .collect()
    }

    /// The total quantity resting on `side` at prices at least as good as `limit` for a taker
    /// (`None`: any price), counting at most up to `enough`.
    #[must_use]
    pub fn liquidity(&self, side: Side, limit: Option<Price>, enough: u64) -> u64 {
        let mut total = 0u64;
        for level in self.ladder(side).levels.iter().rev() {
            if let Some(limit) = limit
                && !crosses(side, price_of(side, level.key), limit)
            {
                break;
            }
            total = total.saturating_add(u64::try_from(level.qty).unwrap_or(u64::MAX));
            if total >= enough {
                break;
            }
        }
        total
    }

    /// Visits the resting orders of `side` in priority order (best price first, then time),
    /// stopping when `visit` returns `false`.
    pub fn visit(&self, side: Side, mut visit: impl FnMut(&RestingOrder<P>) -> bool) {
        for level in self.ladder(side).levels.iter().rev() {
            let mut cursor = level.head;
            while cursor != NIL {
                let slot = &self.slots[cursor as usize];
                let order = RestingOrder {
                    id: slot.id,
                    side,
                    price: slot.price,
                    qty: slot.qty,
                    payload: slot.payload,
                };
                if !visit(&order) {
                    return;
                }
                cursor = slot.next;
            }
        }
    }

    /// Matches an incoming order of `side` against the opposite side, up to `qty`, at prices no
    /// worse than `limit` (`None`: a market order), calling `on_fill` for every execution.
    /// Returns the unfilled quantity.
    pub fn match_incoming(
        &mut self,
        side: Side,
        limit: Option<Price>,
        qty: Qty,
        mut on_fill: impl FnMut(&Fill<P>),
    ) -> Qty {
        let maker_side = side.opposite();
        let mut remaining = qty.0;
        while remaining > 0 {
            let Some(front) = self.front(maker_side) else {
                break;
            };
            if let Some(limit) = limit
                && !crosses(maker_side, front.price, limit)
            {
                break;
            }
            let take = remaining.min(front.qty.0);
            let Some(fill) = self.fill_front(maker_side, Qty(take)) else {
                break;
            };
            remaining -= take;
            on_fill(&fill);
        }
        Qty(remaining)
    }

    /// A limit order: matches what crosses, then rests the remainder under `id`.
    /// Returns the quantity that rested.
    pub fn execute_limit(
        &mut self,
        id: OrderId,
        side: Side,
        price: Price,
        qty: Qty,
        payload: P,
        on_fill: impl FnMut(&Fill<P>),
    ) -> Result<Qty, BookError> {
        if qty.0 == 0 {
            return Err(BookError::InvalidQuantity);
        }
        if self.index.contains_key(&id) {
            return Err(BookError::DuplicateOrderId);
        }
        let rest = self.match_incoming(side, Some(price), qty, on_fill);
        if rest.0 > 0 {
            self.add(id, side, price, rest, payload)?;
        }
        Ok(rest)
    }

    /// A market order: matches up to `qty` at any price; the remainder is dropped.
    /// Returns the unfilled quantity.
    pub fn execute_market(&mut self, side: Side, qty: Qty, on_fill: impl FnMut(&Fill<P>)) -> Qty {
        self.match_incoming(side, None, qty, on_fill)
    }
}

/// Whether a resting order of `maker_side` at `maker_price` is acceptable to a taker whose limit
/// is `limit`: a buyer accepts asks at or below its limit, a seller bids at or above.
#[inline]
#[must_use]
pub fn crosses(maker_side: Side, maker_price: Price, limit: Price) -> bool {
    match maker_side {
        Side::Sell => maker_price <= limit,
        Side::Buy => maker_price >= limit,
    }
}

#[cfg(test)]
mod tests;
