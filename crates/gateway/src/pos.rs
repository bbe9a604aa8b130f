//! The point of sale: the merchant's products, and a sale made at the counter — items from
//! the product list and amounts keyed in, tax at the merchant's rate, a tip as a preset
//! percentage or an amount — which becomes an invoice (`source = pos`) whose total the
//! server computes from its own prices: the tablet sends what was sold, never the price.
//! Tax and tip are kept with the invoice for the reports.

use coss_store::PosProduct;
use coss_types::{Amount, UserId};
use serde::{Deserialize, Serialize};

use crate::invoices::{decimal, parse_money};
use crate::{CreateInvoice, Gateway, GatewayError, InvoiceView};

/// Most products a merchant keeps at the counter.
pub const MAX_PRODUCTS: usize = 200;
/// Most lines in one sale.
pub const MAX_LINES: usize = 100;
/// Highest tax rate: 50%, in parts per million.
pub const MAX_TAX_PPM: u32 = 500_000;
/// Highest tip percentage.
pub const MAX_TIP_PERCENT: u32 = 100;

/// A product as the counter shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ProductView {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its price (decimal).
    pub price: String,
    /// The currency of the price.
    pub currency: String,
}

fn product_view(p: &PosProduct) -> ProductView {
    ProductView {
        id: p.id,
        name: p.name.clone(),
        price: p.price.clone(),
        currency: p.currency.clone(),
    }
}

/// One line of a sale.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleLine {
    /// A product of the merchant's list…
    #[serde(default)]
    pub product_id: Option<i64>,
    /// …or an amount keyed in (decimal, in the sale's currency).
    #[serde(default)]
    pub amount: Option<String>,
    /// How many (default 1, at most 1000).
    #[serde(default)]
    pub quantity: Option<u32>,
}

/// A sale at the counter.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sale {
    /// The currency every line is in (the products' own).
    pub currency: String,
    /// What was sold.
    pub lines: Vec<SaleLine>,
    /// Tax on the subtotal, in parts per million (100000 is 10%).
    #[serde(default)]
    pub tax_ppm: Option<u32>,
    /// A tip as a percentage of the subtotal…
    #[serde(default)]
    pub tip_percent: Option<u32>,
    /// …or as an amount (decimal).
    #[serde(default)]
    pub tip: Option<String>,
    /// The assets the customer may pay with (default: every listed one).
    #[serde(default)]
    pub accepted_assets: Option<Vec<String>>,
}

/// A share of `amount` in parts per million, rounded half up.
fn share(amount: u128, ppm: u128) -> u128 {
    (amount.saturating_mul(ppm) + 500_000) / 1_000_000
}

impl Gateway {
    /// The merchant's products.
    pub async fn products(&self, merchant: UserId) -> Result<Vec<ProductView>, GatewayError> {
        Ok(self
            .inner
            .store
            .pos_products(merchant)
            .await?
            .iter()
            .map(product_view)
            .collect())
    }

    /// Adds a product.
    pub async fn add_product(
        &self,
        merchant: UserId,
        name: &str,
        price: &str,
        currency: &str,
    ) -> Result<ProductView, GatewayError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 80 || name.chars().any(char::is_control) {
            return Err(GatewayError::InvalidParameter(
                "name (1 to 80 characters)".into(),
            ));
        }
        let currency = currency.trim().to_ascii_uppercase();
        let decimals = self.currency_decimals(&currency)?;
        let units = parse_money(price, decimals, "price")?;
        if units == 0 {
            return Err(GatewayError::InvalidAmount(
                "the price must be positive".into(),
            ));
        }
        let store = &self.inner.store;
        if store.pos_products(merchant).await?.len() >= MAX_PRODUCTS {
            return Err(GatewayError::TooMany("products (200)"));
        }
        let product = store
            .add_pos_product(
                merchant,
                name,
                &decimal(Amount(units), decimals),
                &currency,
                self.now(),
            )
            .await?;
        Ok(product_view(&product))
    }

    /// Takes a product off the counter.
    pub async fn remove_product(&self, merchant: UserId, id: i64) -> Result<(), GatewayError> {
        if !self.inner.store.remove_pos_product(merchant, id).await? {
            return Err(GatewayError::NotFound);
        }
        Ok(())
    }

    /// Rings up a sale: the invoice the customer pays at the counter.
    pub async fn sell(&self, merchant: UserId, sale: &Sale) -> Result<InvoiceView, GatewayError> {
        let currency = sale.currency.trim().to_ascii_uppercase();
        let decimals = self.currency_decimals(&currency)?;
        if sale.lines.is_empty() || sale.lines.len() > MAX_LINES {
            return Err(GatewayError::InvalidParameter("lines (1 to 100)".into()));
        }
        let products = self.inner.store.pos_products(merchant).await?;
        let mut subtotal: u128 = 0;
        let mut names = Vec::new();
        for line in &sale.lines {
            let quantity = line.quantity.unwrap_or(1);
            if quantity == 0 || quantity > 1_000 {
                return Err(GatewayError::InvalidParameter(
                    "quantity (1 to 1000)".into(),
                ));
            }
            let (unit, name) = match (line.product_id, &line.amount) {
                (Some(id), None) => {
                    let product = products
                        .iter()
                        .find(|p| p.id == id)
                        .ok_or_else(|| GatewayError::InvalidParameter(format!("product {id}")))?;
                    if product.currency != currency {
                        return Err(GatewayError::InvalidParameter(format!(
                            "product {id} is priced in {}, the sale in {currency}",
                            product.currency
                        )));
                    }
                    (
                        parse_money(&product.price, decimals, "price")?,
                        product.name.clone(),
                    )
                }
                (None, Some(amount)) => (
                    parse_money(amount, decimals, "amount")?,
                    String::from("amount"),
                ),
                _ => {
                    return Err(GatewayError::InvalidParameter(
                        "each line has a product_id or an amount".into(),
                    ));
                }
            };
            subtotal = subtotal
                .checked_add(unit.saturating_mul(u128::from(quantity)))
                .ok_or_else(|| GatewayError::InvalidAmount("the sale is too large".into()))?;
            names.push(if quantity > 1 {
                format!("{quantity}× {name}")
            } else {
                name
            });
        }
        if subtotal == 0 {
            return Err(GatewayError::InvalidAmount("the sale is empty".into()));
        }
        let tax_ppm = sale.tax_ppm.unwrap_or(0);
        if tax_ppm > MAX_TAX_PPM {
            return Err(GatewayError::InvalidParameter(
                "tax_ppm (at most 500000)".into(),
            ));
        }
        let tax = share(subtotal, u128::from(tax_ppm));
        let tip = match (sale.tip_percent, &sale.tip) {
            (Some(p), None) if p <= MAX_TIP_PERCENT => share(subtotal, u128::from(p) * 10_000),
            (Some(_), None) => {
                return Err(GatewayError::InvalidParameter(
                    "tip_percent (0 to 100)".into(),
                ));
            }
            (None, Some(amount)) => parse_money(amount, decimals, "tip")?,
            (None, None) => 0,
            (Some(_), Some(_)) => {
                return Err(GatewayError::InvalidParameter(
                    "tip_percent or tip, not both".into(),
                ));
            }
        };
        let total = subtotal
            .checked_add(tax)
            .and_then(|t| t.checked_add(tip))
            .ok_or_else(|| GatewayError::InvalidAmount("the sale is too large".into()))?;
        let mut description = names.join(", ");
        if description.len() > 500 {
            description.truncate(description.floor_char_boundary(497));
            description.push('…');
        }
        let request = CreateInvoice {
            price: decimal(Amount(total), decimals),
            currency,
            accepted_assets: sale.accepted_assets.clone(),
            tax: Some(decimal(Amount(tax), decimals)),
            tip: Some(decimal(Amount(tip), decimals)),
            description: Some(description),
            ..CreateInvoice::default()
        };
        self.create_invoice(merchant, &request, None, "pos").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_round_half_up() {
        assert_eq!(share(1_000, 100_000), 100);
        assert_eq!(share(1_005, 100_000), 101);
        assert_eq!(share(1_004, 100_000), 100);
        assert_eq!(share(0, 100_000), 0);
    }
}
