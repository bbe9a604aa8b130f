//! Reports for the merchant's books: invoices, payments, settlements and refunds made in a
//! time range, as JSON or CSV, each money row with its fiat value at payment time — at the
//! rate fixed when the invoice was made (its own currency for a fiat price; for a crypto
//! price, the report currency at creation when a source answered). Tips, tax, fees and net
//! amounts are columns of their own. CSV cells that a spreadsheet would run as a formula are
//! prefixed with `'`.

use alloy::primitives::U256;
use coss_store::{DepositStatus, InvoiceFilter, MoveStatus};
use coss_types::{Amount, UserId};

use crate::invoices::decimal;
use crate::rates::RATE_DECIMALS;
use crate::{Gateway, GatewayError};

/// Most invoices one report covers (narrow the range for more).
pub const MAX_REPORT_INVOICES: i64 = 10_000;

/// What a report lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// One row per invoice.
    Invoices,
    /// One row per payment (on chain or from a balance).
    Payments,
    /// One row per settlement to the merchant.
    Settlements,
    /// One row per refund.
    Refunds,
}

impl ReportKind {
    /// The kind a path segment names.
    pub fn parse(text: &str) -> Result<Self, GatewayError> {
        match text {
            "invoices" => Ok(Self::Invoices),
            "payments" => Ok(Self::Payments),
            "settlements" => Ok(Self::Settlements),
            "refunds" => Ok(Self::Refunds),
            other => Err(GatewayError::InvalidParameter(format!(
                "report {other:?} (invoices, payments, settlements or refunds)"
            ))),
        }
    }

    /// Its columns, in order.
    #[must_use]
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Self::Invoices => &[
                "invoice",
                "order_id",
                "created_at",
                "status",
                "flags",
                "currency",
                "price",
                "tax",
                "tip",
                "source",
                "settled_at",
            ],
            Self::Payments => &[
                "invoice",
                "order_id",
                "seen_at",
                "method",
                "asset",
                "amount",
                "status",
                "tx_hash",
                "fiat_currency",
                "fiat_rate",
                "fiat_value",
            ],
            Self::Settlements => &[
                "invoice",
                "order_id",
                "at",
                "asset",
                "amount",
                "fee",
                "net",
                "status",
                "fiat_currency",
                "fiat_rate",
                "fiat_amount",
                "fiat_fee",
                "fiat_net",
                "tax",
                "tip",
            ],
            Self::Refunds => &[
                "invoice",
                "order_id",
                "at",
                "asset",
                "amount",
                "destination",
                "status",
                "fiat_currency",
                "fiat_rate",
                "fiat_value",
            ],
        }
    }
}

/// One row: a value per column, in [`ReportKind::columns`] order.
pub type Row = Vec<String>;

/// `amount` (with `asset_decimals`) at `rate` (currency per unit, 10^12) in the currency's
/// `fiat_decimals`, rounded half up.
#[must_use]
pub fn fiat_value(amount: u128, asset_decimals: u8, rate: u128, fiat_decimals: u8) -> String {
    let ten = U256::from(10u8);
    let scale = u32::from(asset_decimals) + u32::from(RATE_DECIMALS);
    let product = U256::from(amount) * U256::from(rate) * ten.pow(U256::from(fiat_decimals));
    let divisor = ten.pow(U256::from(scale));
    let (q, r) = product.div_rem(divisor);
    let q = if r * U256::from(2u8) >= divisor {
        q + U256::from(1u8)
    } else {
        q
    };
    u128::try_from(q).map_or_else(
        |_| "overflow".to_owned(),
        |v| Amount(v).to_decimal_string(fiat_decimals),
    )
}

/// A CSV document: a header line, then one line per row (RFC 4180 quoting).
#[must_use]
pub fn csv(columns: &[&str], rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(&columns.join(","));
    out.push_str("\r\n");
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fn cell(value: &str) -> String {
    // A leading = + - @ (or tab, CR) would be a formula to a spreadsheet: merchant-supplied
    // text such as an order id must never run as one.
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

impl Gateway {
    /// A report of `kind` over invoices made in `[since, until)`.
    pub async fn report(
        &self,
        merchant: UserId,
        kind: ReportKind,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Vec<Row>, GatewayError> {
        let store = &self.inner.store;
        let filter = InvoiceFilter {
            since,
            until,
            ..InvoiceFilter::default()
        };
        let mut invoices = store
            .invoices_of(merchant, &filter, MAX_REPORT_INVOICES)
            .await?;
        invoices.reverse();
        let decimals_of = |asset: &str| self.decimals(asset);
        let mut rows = Vec::new();
        for invoice in &invoices {
            if kind == ReportKind::Invoices {
                rows.push(vec![
                    invoice.public_id.clone(),
                    invoice.order_id.clone().unwrap_or_default(),
                    invoice.created_at.to_string(),
                    invoice.status.as_str().to_owned(),
                    crate::model::flag_names(invoice.flags).join(" "),
                    invoice.currency.clone(),
                    invoice.price.clone(),
                    invoice.tax.clone(),
                    invoice.tip.clone(),
                    invoice.source.clone(),
                    invoice
                        .settled_at
                        .map(|t| t.to_string())
                        .unwrap_or_default(),
                ]);
                continue;
            }
            let facts = self.facts(invoice).await?;
            let fiat_currency = invoice.fiat_currency.clone().unwrap_or_default();
            let fiat_decimals = self
                .inner
                .config
                .fiat
                .get(&fiat_currency)
                .copied()
                .unwrap_or(2);
            let rate_of = |asset: &str| {
                facts
                    .assets
                    .iter()
                    .find(|a| a.asset == asset)
                    .and_then(|a| a.fiat_rate.as_deref())
                    .and_then(crate::rates::parse_rate)
            };
            let fiat = |asset: &str, amount: u128| match rate_of(asset) {
                Some(rate) => (
                    decimal(Amount(rate), RATE_DECIMALS),
                    fiat_value(amount, decimals_of(asset), rate, fiat_decimals),
                ),
                None => (String::new(), String::new()),
            };
            let order = invoice.order_id.clone().unwrap_or_default();
            match kind {
                ReportKind::Invoices => {}
                ReportKind::Payments => {
                    for d in &facts.deposits {
                        if matches!(d.status, DepositStatus::Orphaned | DepositStatus::Refused) {
                            continue;
                        }
                        let (rate, value) = fiat(&d.asset, d.amount.0);
                        rows.push(vec![
                            invoice.public_id.clone(),
                            order.clone(),
                            d.created_at.to_string(),
                            "chain".into(),
                            d.asset.clone(),
                            decimal(d.amount, decimals_of(&d.asset)),
                            d.status.as_str().to_owned(),
                            d.tx_hash.clone(),
                            fiat_currency.clone(),
                            rate,
                            value,
                        ]);
                    }
                    for b in facts
                        .balance
                        .iter()
                        .filter(|b| b.status == MoveStatus::Done)
                    {
                        let (rate, value) = fiat(&b.asset, b.amount.0);
                        rows.push(vec![
                            invoice.public_id.clone(),
                            order.clone(),
                            b.created_at.to_string(),
                            "balance".into(),
                            b.asset.clone(),
                            decimal(b.amount, decimals_of(&b.asset)),
                            "done".into(),
                            String::new(),
                            fiat_currency.clone(),
                            rate,
                            value,
                        ]);
                    }
                }
                ReportKind::Settlements | ReportKind::Refunds => {
                    let wanted = if kind == ReportKind::Settlements {
                        "settlement"
                    } else {
                        "refund"
                    };
                    for m in facts.moves.iter().filter(|m| m.kind == wanted) {
                        let d = decimals_of(&m.asset);
                        let (rate, gross) = fiat(&m.asset, m.amount.0);
                        if kind == ReportKind::Refunds {
                            rows.push(vec![
                                invoice.public_id.clone(),
                                order.clone(),
                                m.created_at.to_string(),
                                m.asset.clone(),
                                decimal(m.amount, d),
                                if m.payer_id.is_some() {
                                    "account"
                                } else {
                                    "address"
                                }
                                .into(),
                                m.status.as_str().to_owned(),
                                fiat_currency.clone(),
                                rate,
                                gross,
                            ]);
                            continue;
                        }
                        let net = m.amount.0.saturating_sub(m.fee.0);
                        let (_, fee_value) = fiat(&m.asset, m.fee.0);
                        let (_, net_value) = fiat(&m.asset, net);
                        rows.push(vec![
                            invoice.public_id.clone(),
                            order.clone(),
                            m.created_at.to_string(),
                            m.asset.clone(),
                            decimal(m.amount, d),
                            decimal(m.fee, d),
                            decimal(Amount(net), d),
                            m.status.as_str().to_owned(),
                            fiat_currency.clone(),
                            rate,
                            gross,
                            fee_value,
                            net_value,
                            invoice.tax.clone(),
                            invoice.tip.clone(),
                        ]);
                    }
                }
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fiat_values_round_half_up_in_the_currency_s_decimals() {
        let rate = 3_000 * 10u128.pow(12);
        assert_eq!(fiat_value(10u128.pow(16), 18, rate, 2), "30.00");
        assert_eq!(fiat_value(1_666_666_666_666_667, 18, rate, 2), "5.00");
        assert_eq!(fiat_value(1_500_000_000_000, 18, rate, 2), "0.00");
        assert_eq!(fiat_value(1_700_000_000_000, 18, rate, 2), "0.01");
        assert_eq!(fiat_value(25_000_000, 6, 10u128.pow(12), 0), "25");
    }

    #[test]
    fn csv_quotes_and_never_lets_a_cell_be_a_formula() {
        let rows = vec![vec![
            "inv_1".to_owned(),
            "=HYPERLINK(\"x\")".to_owned(),
            "a,b".to_owned(),
        ]];
        assert_eq!(
            csv(&["invoice", "order_id", "note"], &rows),
            "invoice,order_id,note\r\ninv_1,\"'=HYPERLINK(\"\"x\"\")\",\"a,b\"\r\n"
        );
    }
}
