use super::*;
use proptest::prelude::*;

fn id(n: u64) -> OrderId {
    OrderId(n)
}

fn fills_of(
    book: &mut OrderBook<u32>,
    side: Side,
    limit: Option<Price>,
    qty: u64,
) -> Vec<(u64, u64, u64)> {
    let mut fills = Vec::new();
    book.match_incoming(side, limit, Qty(qty), |f| {
        fills.push((f.maker.0, f.price.0, f.qty.0))
    });
    fills
}

#[test]
fn best_prices_are_highest_bid_and_lowest_ask() {
    let mut book = OrderBook::new();
    book.add(id(1), Side::Buy, Price(100), Qty(1), 0u32)
        .unwrap();
    book.add(id(2), Side::Buy, Price(101), Qty(1), 0).unwrap();
    book.add(id(3), Side::Sell, Price(105), Qty(1), 0).unwrap();
    book.add(id(4), Side::Sell, Price(104), Qty(1), 0).unwrap();
    assert_eq!(book.best(Side::Buy), Some(Price(101)));
    assert_eq!(book.best(Side::Sell), Some(Price(104)));
    assert_eq!(book.len(), 4);
}

#[test]
fn earlier_order_at_the_same_price_fills_first() {
    let mut book = OrderBook::new();
    book.add(id(1), Side::Sell, Price(100), Qty(5), 0u32)
        .unwrap();
    book.add(id(2), Side::Sell, Price(100), Qty(5), 0).unwrap();
    assert_eq!(
        fills_of(&mut book, Side::Buy, Some(Price(100)), 7),
        vec![(1, 100, 5), (2, 100, 2)]
    );
    assert_eq!(book.get(id(2)).unwrap().qty, Qty(3));
}

#[test]
fn better_price_fills_before_earlier_time() {
    let mut book = OrderBook::new();
    book.add(id(1), Side::Sell, Price(101), Qty(5), 0u32)
        .unwrap();
    book.add(id(2), Side::Sell, Price(100), Qty(5), 0).unwrap();
    assert_eq!(
        fills_of(&mut book, Side::Buy, None, 6),
        vec![(2, 100, 5), (1, 101, 1)]
    );
}

#[test]
fn taker_never_trades_beyond_its_limit() {
    let mut book = OrderBook::new();
    book.add(id(1), Side::Buy, Price(99), Qty(5), 0u32).unwrap();
    assert!(fills_of(&mut book, Side::Sell, Some(Price(100)), 5).is_empty());
    assert_eq!(
        fills_of(&mut book, Side::Sell, Some(Price(99)), 5),
        vec![(1, 99, 5)]
    );
    assert!(book.is_empty());
}

#[test]
fn reducing_quantity_keeps_time_priority() {
    let mut book = OrderBook::new();
    book.add(id(1), Side::Buy, Price(100), Qty(10), 0u32)
        .unwrap();
    book.add(id(2), Side::Buy, Price(100), Qty(10), 0).unwrap();
    book.reduce(id(1), Qty(4)).unwrap();
    assert_eq!(book.reduce(id(1), Qty(4)), Err(BookError::InvalidQuantity));
    assert_eq!(book.reduce(id(1), Qty(0)), Err(BookError::InvalidQuantity));
    assert_eq!(
        fills_of(&mut book, Side::Sell, None, 5),
        vec![(1, 100, 4), (2, 100, 1)]
    );
    assert_eq!(
        book.depth(Side::Buy, 5),
        vec![DepthLevel {
            price: Price(100),
            qty: Qty(9),
            orders: 1
        }]
    );
}

#[test]
fn cancelling_the_middle_of_a_level_keeps_the_others_in_order() {
    let mut book = OrderBook::new();
    for n in 1..=3 {
        book.add(id(n), Side::Sell, Price(100), Qty(1), 0u32)
            .unwrap();
    }
    assert_eq!(book.cancel(id(2)).map(|o| o.qty), Some(Qty(1)));
    assert_eq!(book.cancel(id(2)), None);
    assert_eq!(
        fills_of(&mut book, Side::Buy, None, 3),
        vec![(1, 100, 1), (3, 100, 1)]
    );
}

#[test]
fn duplicate_ids_and_zero_quantities_are_refused() {
    let mut book = OrderBook::new();
    book.add(id(1), Side::Buy, Price(1), Qty(1), 0u32).unwrap();
    assert_eq!(
        book.add(id(1), Side::Sell, Price(5), Qty(1), 0),
        Err(BookError::DuplicateOrderId)
    );
    assert_eq!(
        book.add(id(2), Side::Sell, Price(5), Qty(0), 0),
        Err(BookError::InvalidQuantity)
    );
    assert_eq!(
        book.execute_limit(id(1), Side::Sell, Price(1), Qty(1), 0, |_| {}),
        Err(BookError::DuplicateOrderId)
    );
    assert_eq!(book.len(), 1);
}

#[test]
fn limit_order_rests_its_unfilled_remainder() {
    let mut book = OrderBook::new();
    book.add(id(1), Side::Sell, Price(100), Qty(3), 7u32)
        .unwrap();
    let mut payloads = Vec::new();
    let rest = book
        .execute_limit(id(2), Side::Buy, Price(100), Qty(5), 9, |f| {
            payloads.push(f.maker_payload)
        })
        .unwrap();
    assert_eq!(rest, Qty(2));
    assert_eq!(payloads, vec![7]);
    assert_eq!(book.best(Side::Buy), Some(Price(100)));
    assert_eq!(book.get(id(2)).unwrap().payload, 9);
    assert_eq!(book.execute_market(Side::Sell, Qty(10), |_| {}), Qty(8));
    assert!(book.is_empty());
}

#[test]
fn liquidity_counts_only_acceptable_prices() {
    let mut book = OrderBook::new();
    book.add(id(1), Side::Sell, Price(100), Qty(3), 0u32)
        .unwrap();
    book.add(id(2), Side::Sell, Price(101), Qty(4), 0).unwrap();
    book.add(id(3), Side::Sell, Price(102), Qty(5), 0).unwrap();
    assert_eq!(book.liquidity(Side::Sell, Some(Price(101)), u64::MAX), 7);
    assert_eq!(book.liquidity(Side::Sell, None, u64::MAX), 12);
    assert_eq!(book.liquidity(Side::Sell, None, 2), 3);
}

#[test]
fn slots_are_reused_after_orders_leave() {
    let mut book = OrderBook::new();
    for round in 0..100u64 {
        book.add(id(round), Side::Buy, Price(round % 7), Qty(1), 0u32)
            .unwrap();
        book.cancel(id(round)).unwrap();
    }
    assert!(book.slots.len() <= 1);
}

/// The obviously-correct model: a flat list of orders, scanned in full every time.
#[derive(Default)]
struct NaiveBook {
    orders: Vec<(u64, Side, u64, u64)>, // id, side, price, qty — in arrival order
}

impl NaiveBook {
    fn best_index(&self, side: Side) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, o) in self.orders.iter().enumerate() {
            if o.1 != side {
                continue;
            }
            best = match best {
                None => Some(i),
                Some(b) => {
                    let better = match side {
                        Side::Buy => o.2 > self.orders[b].2,
                        Side::Sell => o.2 < self.orders[b].2,
                    };
                    if better { Some(i) } else { Some(b) }
                }
            };
        }
        best
    }

    fn execute_limit(
        &mut self,
        id: u64,
        side: Side,
        price: u64,
        mut qty: u64,
    ) -> Vec<(u64, u64, u64)> {
        let mut fills = Vec::new();
        while qty > 0 {
            let Some(b) = self.best_index(side.opposite()) else {
                break;
            };
            let maker = self.orders[b];
            let ok = match side {
                Side::Buy => maker.2 <= price,
                Side::Sell => maker.2 >= price,
            };
            if !ok {
                break;
            }
            let take = qty.min(maker.3);
            fills.push((maker.0, maker.2, take));
            qty -= take;
            if take == maker.3 {
                self.orders.remove(b);
            } else {
                self.orders[b].3 -= take;
            }
        }
        if qty > 0 {
            self.orders.push((id, side, price, qty));
        }
        fills
    }

    fn cancel(&mut self, id: u64) -> bool {
        let before = self.orders.len();
        self.orders.retain(|o| o.0 != id);
        before != self.orders.len()
    }

    fn reduce(&mut self, id: u64, qty: u64) -> bool {
        match self.orders.iter_mut().find(|o| o.0 == id) {
            Some(o) if qty > 0 && qty < o.3 => {
                o.3 = qty;
                true
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Limit(Side, u64, u64),
    Cancel(u64),
    Reduce(u64, u64),
}

fn op() -> impl Strategy<Value = Op> {
    let side = prop_oneof![Just(Side::Buy), Just(Side::Sell)];
    prop_oneof![
        6 => (side, 90u64..110, 1u64..20).prop_map(|(s, p, q)| Op::Limit(s, p, q)),
        2 => (0u64..200).prop_map(Op::Cancel),
        1 => (0u64..200, 0u64..20).prop_map(|(i, q)| Op::Reduce(i, q)),
    ]
}

proptest! {
    #[test]
    fn book_matches_the_naive_model(ops in proptest::collection::vec(op(), 1..300)) {
        let mut book = OrderBook::<u32>::new();
        let mut model = NaiveBook::default();
        for (n, op) in ops.into_iter().enumerate() {
            let n = n as u64;
            match op {
                Op::Limit(side, price, qty) => {
                    let mut fills = Vec::new();
                    book.execute_limit(id(n), side, Price(price), Qty(qty), 0, |f| {
                        fills.push((f.maker.0, f.price.0, f.qty.0))
                    }).unwrap();
                    prop_assert_eq!(fills, model.execute_limit(n, side, price, qty));
                }
                Op::Cancel(target) => {
                    prop_assert_eq!(book.cancel(id(target)).is_some(), model.cancel(target));
                }
                Op::Reduce(target, qty) => {
                    prop_assert_eq!(book.reduce(id(target), Qty(qty)).is_ok(), model.reduce(target, qty));
                }
            }
            prop_assert_eq!(book.len(), model.orders.len());
            for side in [Side::Buy, Side::Sell] {
                let mut ours = Vec::new();
                book.visit(side, |o| { ours.push((o.id.0, o.price.0, o.qty.0)); true });
                let mut theirs: Vec<_> = model.orders.iter().enumerate()
                    .filter(|(_, o)| o.1 == side)
                    .map(|(arrival, o)| (arrival, o.0, o.2, o.3))
                    .collect();
                theirs.sort_by_key(|&(arrival, _, price, _)| match side {
                    Side::Buy => (u64::MAX - price, arrival),
                    Side::Sell => (price, arrival),
                });
                let theirs: Vec<_> = theirs.into_iter().map(|(_, i, p, q)| (i, p, q)).collect();
                prop_assert_eq!(ours, theirs);
                let depth_total: u64 = book.depth(side, usize::MAX).iter().map(|l| l.qty.0).sum();
                let model_total: u64 = model.orders.iter().filter(|o| o.1 == side).map(|o| o.3).sum();
                prop_assert_eq!(depth_total, model_total);
            }
        }
    }
}
