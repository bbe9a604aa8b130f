//! Orders: new (and test), query, cancel, open orders, cancel all.

use super::history::history_error;
use super::market_data::market_of;
use super::*;

// ---- orders ----

pub(crate) fn client_id(order: &Order) -> String {
    order
        .client_id()
        .map_or_else(|| format!("coss{}", order.id.0), |c| c.as_str().to_owned())
}

/// An order as `GET /api/v3/order` shows it.
pub(crate) fn order_json(m: &Market, o: &Order) -> Value {
    json!({
        "symbol": m.symbol,
        "orderId": o.id.0,
        "orderListId": -1,
        "clientOrderId": client_id(o),
        "price": o.price.map_or_else(|| "0.00000000".to_owned(), |p| units::price(m, p)),
        "origQty": units::qty(m, o.qty.map_or(0, |q| q.0)),
        "executedQty": units::qty(m, o.executed),
        "cummulativeQuoteQty": units::quote(m, o.cum_quote),
        "status": o.status.name(),
        "timeInForce": o.time_in_force().map_or("GTC", tif_name),
        "type": order_type_name(&o.new.kind),
        "side": side_name(o.new.side),
        "stopPrice": o.stop_price().map_or_else(|| "0.00000000".to_owned(), |p| units::price(m, p)),
        "icebergQty": "0.00000000",
        "time": o.time_ms,
        "updateTime": o.update_ms,
        "isWorking": o.working_ms.is_some(),
        "workingTime": o.working_ms.map_or(-1, |t| i64::try_from(t).unwrap_or(-1)),
        "origQuoteOrderQty": units::quote(m, o.quote_order_qty().map_or(0, |a| a.0)),
        "selfTradePreventionMode": stp_name(o.stp()),
    })
}

/// A cancelled order as `DELETE /api/v3/order` and `DELETE /api/v3/openOrders` answer it:
/// the order, the client order id the request named it by, and when it was cancelled.
pub(crate) fn cancelled_json(m: &Market, o: &Order, orig_client_id: String) -> Value {
    let mut answer = order_json(m, o);
    if let Value::Object(fields) = &mut answer {
        fields.insert("origClientOrderId".into(), Value::String(orig_client_id));
        fields.insert("transactTime".into(), json!(o.update_ms));
    }
    answer
}

/// The parsed `POST /api/v3/order`.
pub(crate) struct OrderRequest {
    new: NewOrder,
    response: &'static str,
}

pub(crate) fn parse_order(
    projection: &Projection,
    p: &Params,
    account: AccountId,
) -> Result<OrderRequest, BinanceError> {
    let view = market_of(projection, p)?;
    let m = &view.market;
    let side = match p.require("side")? {
        "BUY" => Side::Buy,
        "SELL" => Side::Sell,
        _ => return Err(BinanceError::new(-1117, "Invalid side.")),
    };
    let order_type = p.require("type")?;
    let tif = || -> Result<TimeInForce, BinanceError> {
        match p.require("timeInForce")? {
            "GTC" => Ok(TimeInForce::Gtc),
            "IOC" => Ok(TimeInForce::Ioc),
            "FOK" => Ok(TimeInForce::Fok),
            _ => Err(BinanceError::new(-1115, "Invalid timeInForce.")),
        }
    };
    let price = || units::parse_price(m, "price", p.require("price")?);
    let qty = || units::parse_qty(m, "quantity", p.require("quantity")?);
    let stop = || units::parse_price(m, "stopPrice", p.require("stopPrice")?);
    let refuse = |names: &[&str]| -> Result<(), BinanceError> {
        match names.iter().find(|n| p.has(n)) {
            Some(name) => Err(BinanceError::not_required(name)),
            None => Ok(()),
        }
    };
    let kind = match order_type {
        "LIMIT" => {
            refuse(&["quoteOrderQty", "stopPrice"])?;
            let tif = tif()?;
            OrderKind::Limit {
                price: price()?,
                qty: qty()?,
                tif,
            }
        }
        "LIMIT_MAKER" => {
            refuse(&["quoteOrderQty", "stopPrice", "timeInForce"])?;
            OrderKind::Limit {
                price: price()?,
                qty: qty()?,
                tif: TimeInForce::PostOnly,
            }
        }
        "MARKET" => {
            refuse(&["price", "stopPrice", "timeInForce"])?;
            match (p.has("quantity"), p.has("quoteOrderQty")) {
                (true, false) => OrderKind::Market { qty: qty()? },
                (false, true) => {
                    let amount = units::parse(
                        "quoteOrderQty",
                        p.require("quoteOrderQty")?,
                        m.quote.decimals,
                    )?;
                    if amount == 0 {
                        return Err(BinanceError::filter("MIN_NOTIONAL"));
                    }
                    OrderKind::MarketQuote {
                        amount: Amount(amount),
                    }
                }
                (true, true) => {
                    return Err(BinanceError::new(
                        -1106,
                        "Parameter 'quoteOrderQty' sent when not required.",
                    ));
                }
                (false, false) => {
                    return Err(BinanceError::new(
                        -1102,
                        "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
                    ));
                }
            }
        }
        "STOP_LOSS_LIMIT" => {
            refuse(&["quoteOrderQty"])?;
            let tif = tif()?;
            OrderKind::StopLimit {
                stop: stop()?,
                price: price()?,
                qty: qty()?,
                tif,
            }
        }
        "TAKE_PROFIT_LIMIT" => {
            refuse(&["quoteOrderQty"])?;
            let tif = tif()?;
            OrderKind::TakeProfitLimit {
                stop: stop()?,
                price: price()?,
                qty: qty()?,
                tif,
            }
        }
        "STOP_LOSS" | "TAKE_PROFIT" => {
            return Err(BinanceError::new(-1013, "Unsupported order combination."));
        }
        _ => return Err(BinanceError::new(-1116, "Invalid orderType.")),
    };
    // MIN_NOTIONAL for orders with a price and quantity, before they reach the engine.
    if let OrderKind::Limit { price, qty, .. }
    | OrderKind::StopLimit { price, qty, .. }
    | OrderKind::TakeProfitLimit { price, qty, .. } = kind
        && m.quote_units(price, qty) < m.min_notional
    {
        return Err(BinanceError::filter("MIN_NOTIONAL"));
    }
    let client_id = match p.get("newClientOrderId") {
        Some(text) => ClientOrderId::new(text)
            .map_err(|_| BinanceError::illegal("newClientOrderId", "^[a-zA-Z0-9-_.:/]{1,36}$"))?,
        None => generated_client_id()?,
    };
    let stp = match p.get("selfTradePreventionMode") {
        None | Some("EXPIRE_MAKER") => SelfTradePrevention::ExpireMaker,
        Some("NONE") => SelfTradePrevention::None,
        Some("EXPIRE_TAKER") => SelfTradePrevention::ExpireTaker,
        Some("EXPIRE_BOTH") => SelfTradePrevention::ExpireBoth,
        Some(_) => return Err(BinanceError::new(-1013, "Invalid selfTradePreventionMode.")),
    };
    let response = match p.get("newOrderRespType") {
        None | Some("FULL") => "FULL",
        Some("RESULT") => "RESULT",
        Some("ACK") => "ACK",
        Some(_) => return Err(BinanceError::new(-1177, "Invalid newOrderRespType.")),
    };
    for unsupported in [
        "icebergQty",
        "trailingDelta",
        "strategyId",
        "strategyType",
        "pegPriceType",
        "pegOffsetValue",
        "pegOffsetType",
    ] {
        if p.has(unsupported) {
            return Err(BinanceError::not_required(unsupported));
        }
    }
    Ok(OrderRequest {
        new: NewOrder {
            account,
            market: m.id,
            side,
            kind,
            client_id: Some(client_id),
            stp,
        },
        response,
    })
}

/// `n` random characters of `A-Z a-z 0-9` from the OS's generator.
pub(crate) fn random_text(n: usize) -> Result<String, BinanceError> {
    use ring::rand::SecureRandom;
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| BinanceError::internal("no randomness"))?;
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect())
}

/// 22 random characters, like Binance's generated ids.
pub(crate) fn generated_client_id() -> Result<ClientOrderId, BinanceError> {
    ClientOrderId::new(&random_text(22)?).map_err(BinanceError::internal)
}

pub(crate) fn signed_account(c: &Call) -> Result<AccountId, BinanceError> {
    c.account
        .ok_or_else(|| BinanceError::internal("signed request without an account"))
}

pub(crate) async fn new_order(c: Call) -> Answer {
    let account = signed_account(&c)?;
    let request = {
        let projection = c.binance.inner.market.read();
        parse_order(&projection, &c.params, account)?
    };
    c.params.all_read()?;
    c.binance.inner.limiter.order(account.0, c.now)?;
    let (id, traded) = submit_order(&c, request.new).await?;
    order_answer(&c, id, &traded, request.response)
}

/// Submits a command, waits until it is durable and the projection has applied its events
/// (so the answer reads the caller's own write), and returns its receipt.
pub(crate) async fn submit(
    c: &Call,
    command: Command,
) -> Result<coss_engine::Receipt, BinanceError> {
    let receipt = c
        .binance
        .inner
        .engine
        .submit_async(command)
        .await
        .map_err(|_| BinanceError::unavailable())?;
    if let Some(last) = receipt.events.last() {
        c.binance.inner.market.caught_up(last.seq).await;
    }
    Ok(receipt)
}

/// Places an order; returns its id and the ids of its fills (trades where it was the taker).
pub(crate) async fn submit_order(
    c: &Call,
    new: NewOrder,
) -> Result<(OrderId, Vec<u64>), BinanceError> {
    let receipt = submit(c, Command::PlaceOrder(new)).await?;
    if let Err(reason) = receipt.outcome {
        return Err(BinanceError::order_rejected(reason));
    }
    let mut id = None;
    for event in &receipt.events {
        if let EventKind::OrderAccepted { order, .. } = event.kind {
            id = Some(order);
            break;
        }
    }
    let id = id.ok_or_else(|| BinanceError::internal("accepted order without its event"))?;
    let traded = receipt
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Trade {
                trade, taker_order, ..
            } if taker_order == id => Some(trade),
            _ => None,
        })
        .collect();
    Ok((id, traded))
}

/// The answer to a new order, read from the projection (which has applied its events).
pub(crate) fn order_answer(c: &Call, id: OrderId, traded: &[u64], response: &str) -> Answer {
    let projection = c.binance.inner.market.read();
    let order = projection
        .order(id)
        .ok_or_else(|| BinanceError::internal("order missing from the projection"))?;
    let view = projection
        .market(order.new.market)
        .ok_or_else(BinanceError::bad_symbol)?;
    let m = &view.market;
    let fills = traded.iter().filter_map(|t| view.trade(*t));
    let mut answer = json!({
        "symbol": m.symbol,
        "orderId": id.0,
        "orderListId": -1,
        "clientOrderId": client_id(order),
        "transactTime": order.time_ms,
    });
    if response == "ACK" {
        return Ok(answer);
    }
    let full = order_json(m, order);
    if let (Value::Object(answer), Value::Object(full)) = (&mut answer, full) {
        for (k, v) in full {
            if !matches!(
                k.as_str(),
                "time" | "updateTime" | "isWorking" | "stopPrice" | "icebergQty"
            ) {
                answer.insert(k, v);
            }
        }
        if response == "FULL" {
            let (base, quote) = (&m.base.symbol, &m.quote.symbol);
            let fills: Vec<Value> = fills
                .map(|t| {
                    let asset = if order.new.side == Side::Buy {
                        base
                    } else {
                        quote
                    };
                    let fee_decimals = if order.new.side == Side::Buy {
                        m.base.decimals
                    } else {
                        m.quote.decimals
                    };
                    json!({
                        "price": units::price(m, t.price),
                        "qty": units::qty(m, t.qty.0),
                        "commission": units::decimal(t.taker_fee, fee_decimals),
                        "commissionAsset": asset,
                        "tradeId": t.id,
                    })
                })
                .collect();
            answer.insert("fills".into(), Value::Array(fills));
        }
    }
    Ok(answer)
}

pub(crate) async fn test_order(c: Call) -> Answer {
    let account = signed_account(&c)?;
    {
        let projection = c.binance.inner.market.read();
        parse_order(&projection, &c.params, account)?;
    }
    let _ = c.params.get("computeCommissionRates");
    c.params.all_read()?;
    Ok(json!({}))
}

/// The order a request names by `orderId` or `origClientOrderId`, from the history.
pub(crate) async fn stored_order(
    c: &Call,
    market: &Market,
    account: AccountId,
) -> Result<Option<Order>, BinanceError> {
    let store = c.store();
    let row = match (
        c.params.integer("orderId")?,
        c.params.get("origClientOrderId"),
    ) {
        (Some(id), _) => store.history_order(account, OrderId(id)).await,
        (None, Some(client)) => store.history_order_by_client_id(account, client).await,
        (None, None) => return Ok(None),
    }
    .map_err(history_error)?;
    Ok(row
        .as_ref()
        .and_then(Order::from_row)
        .filter(|o| o.new.market == market.id))
}

/// The order a request names by `orderId` or `origClientOrderId`.
pub(crate) fn named_order<'a>(
    projection: &'a Projection,
    p: &Params,
    account: AccountId,
    view: &MarketView,
) -> Result<Option<&'a Order>, BinanceError> {
    let order = match (p.integer("orderId")?, p.get("origClientOrderId")) {
        (Some(id), _) => projection.order(OrderId(id)),
        (None, Some(client)) => projection.order_by_client_id(account, client),
        (None, None) => {
            return Err(BinanceError::new(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            ));
        }
    };
    Ok(order.filter(|o| o.new.account == account && o.new.market == view.market.id))
}

pub(crate) async fn query_order(c: Call) -> Answer {
    let account = signed_account(&c)?;
    let (market, kept) = {
        let projection = c.binance.inner.market.read();
        let view = market_of(&projection, &c.params)?;
        let order = named_order(&projection, &c.params, account, view)?.cloned();
        (view.market.clone(), order)
    };
    c.params.all_read()?;
    let order = match kept {
        Some(order) => order,
        // A finished order that left memory: from the history.
        None => stored_order(&c, &market, account)
            .await?
            .ok_or_else(BinanceError::no_such_order)?,
    };
    Ok(order_json(&market, &order))
}

pub(crate) async fn cancel_order(c: Call) -> Answer {
    let account = signed_account(&c)?;
    let (market, order, orig_client) = {
        let projection = c.binance.inner.market.read();
        let view = market_of(&projection, &c.params)?;
        let order =
            named_order(&projection, &c.params, account, view)?.map(|o| (o.id, client_id(o)));
        let _ = c.params.get("newClientOrderId");
        let _ = c.params.get("cancelRestrictions");
        (
            view.market.id,
            order,
            c.params.get("origClientOrderId").map(str::to_owned),
        )
    };
    c.params.all_read()?;
    let (id, client) = order.ok_or_else(BinanceError::unknown_order)?;
    let receipt = submit(
        &c,
        Command::Cancel {
            account,
            market,
            order: OrderRef::Id(id),
        },
    )
    .await?;
    if receipt.outcome.is_err() {
        return Err(BinanceError::unknown_order());
    }
    let projection = c.binance.inner.market.read();
    let view = projection
        .market(market)
        .ok_or_else(BinanceError::bad_symbol)?;
    let order = projection
        .order(id)
        .ok_or_else(BinanceError::unknown_order)?;
    Ok(cancelled_json(
        &view.market,
        order,
        orig_client.unwrap_or(client),
    ))
}

pub(crate) async fn open_orders(c: Call) -> Answer {
    let account = signed_account(&c)?;
    let projection = c.binance.inner.market.read();
    let market = match c.params.get("symbol") {
        Some(s) => Some(
            projection
                .market_by_symbol(s)
                .ok_or_else(BinanceError::bad_symbol)?
                .market
                .id,
        ),
        None => None,
    };
    c.params.all_read()?;
    let list = projection
        .open_orders(account)
        .filter(|o| market.is_none_or(|m| o.new.market == m))
        .filter_map(|o| {
            projection
                .market(o.new.market)
                .map(|v| order_json(&v.market, o))
        })
        .collect();
    Ok(Value::Array(list))
}

pub(crate) async fn cancel_open_orders(c: Call) -> Answer {
    let account = signed_account(&c)?;
    let (market, open): (_, Vec<OrderId>) = {
        let projection = c.binance.inner.market.read();
        let view = market_of(&projection, &c.params)?;
        let id = view.market.id;
        (
            id,
            projection
                .open_orders(account)
                .filter(|o| o.new.market == id)
                .map(|o| o.id)
                .collect(),
        )
    };
    c.params.all_read()?;
    if open.is_empty() {
        return Err(BinanceError::unknown_order());
    }
    let receipt = submit(&c, Command::CancelAll { account, market }).await?;
    let cancelled: Vec<OrderId> = receipt
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::OrderDone { order, .. } => Some(order),
            _ => None,
        })
        .collect();
    let projection = c.binance.inner.market.read();
    let view = projection
        .market(market)
        .ok_or_else(BinanceError::bad_symbol)?;
    Ok(Value::Array(
        cancelled
            .into_iter()
            .filter_map(|id| projection.order(id))
            .map(|o| cancelled_json(&view.market, o, client_id(o)))
            .collect(),
    ))
}
