//! The org's money settings: the currency they apply to, the VAT shown
//! inside prices, a booking fee per priced ticket, and the seller's details
//! printed on invoices. Read on every checkout, so kept warm per node
//! (30 s; a change on this node is seen at once).

use std::{sync::Arc, time::Duration};

use kernel::{
    ApiError, ApiResult, Db, FieldError, Permission, Stmt, Tx, db_run, ids::OrgId, tx_run,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::pricing::Rates;
use crate::{
    App,
    identity::{Actor, Tenant},
};

/// An org's money settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneySettings {
    /// ISO 4217: the fee applies to orders in this currency.
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub currency: String,
    /// The VAT included in prices, in basis points (1500 = 15%); 0 shows none.
    #[schema(minimum = 0, maximum = 10000)]
    pub tax_bp: i64,
    /// What the tax is called on receipts ("VAT"): not blank, no control
    /// characters.
    #[schema(
        min_length = 1,
        max_length = 20,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub tax_name: String,
    /// Added per priced ticket, in minor units of `currency` (VAT included).
    #[schema(minimum = 0, maximum = 100000000)]
    pub fee_per_ticket_cents: i64,
    #[serde(default)]
    #[schema(max_length = 200, pattern = r"^[^\x00-\x09\x0b-\x1f\x7f-\x9f]*$")]
    pub seller_name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 500, pattern = r"^[^\x00-\x09\x0b-\x1f\x7f-\x9f]*$")]
    pub seller_address: Option<String>,
    /// The seller's VAT or tax registration number.
    #[serde(default)]
    #[schema(max_length = 50, pattern = r"^[^\x00-\x09\x0b-\x1f\x7f-\x9f]*$")]
    pub seller_tax_number: Option<String>,
    /// Invoice numbers read `<prefix>-000001`.
    #[schema(pattern = r"^[A-Z0-9]{1,10}$")]
    pub invoice_prefix: String,
}

impl Default for MoneySettings {
    fn default() -> Self {
        MoneySettings {
            currency: "ZAR".into(),
            tax_bp: 0,
            tax_name: "VAT".into(),
            fee_per_ticket_cents: 0,
            seller_name: None,
            seller_address: None,
            seller_tax_number: None,
            invoice_prefix: "INV".into(),
        }
    }
}

impl MoneySettings {
    /// The rates that price an order in `currency`: the VAT always, the fee
    /// only in the settings' own currency.
    pub fn rates_for(&self, currency: &str) -> Rates {
        Rates {
            tax_bp: self.tax_bp,
            fee_per_ticket_cents: if currency == self.currency {
                self.fee_per_ticket_cents
            } else {
                0
            },
        }
    }
}

/// The warm copy, per node.
pub struct SettingsCache(moka::future::Cache<OrgId, Arc<MoneySettings>>);

impl SettingsCache {
    pub fn new() -> SettingsCache {
        SettingsCache(
            moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
        )
    }
}

impl Default for SettingsCache {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    currency: String,
    tax_bp: i64,
    tax_name: String,
    fee_per_ticket_cents: i64,
    seller_name: Option<String>,
    seller_address: Option<String>,
    seller_tax_number: Option<String>,
    invoice_prefix: String,
}

async fn load(db: &Db, org: OrgId) -> Result<MoneySettings, sqlx::Error> {
    let sql =
        "SELECT currency, tax_bp, tax_name, fee_per_ticket_cents, seller_name, seller_address,
                      seller_tax_number, invoice_prefix FROM money_settings WHERE org_id = $1";
    let row: Option<Row> = db_run!(db, p => sqlx::query_as(sql).bind(org).fetch_optional(p).await)?;
    Ok(row
        .map(|r| MoneySettings {
            currency: r.currency,
            tax_bp: r.tax_bp,
            tax_name: r.tax_name,
            fee_per_ticket_cents: r.fee_per_ticket_cents,
            seller_name: r.seller_name,
            seller_address: r.seller_address,
            seller_tax_number: r.seller_tax_number,
            invoice_prefix: r.invoice_prefix,
        })
        .unwrap_or_default())
}

/// The org's settings, warm.
pub async fn of(app: &App, org: OrgId) -> ApiResult<Arc<MoneySettings>> {
    let cache = &app.state::<SettingsCache>().0;
    if let Some(s) = cache.get(&org).await {
        return Ok(s);
    }
    let db = app.db().clone();
    cache
        .try_get_with(org, async move { load(&db, org).await.map(Arc::new) })
        .await
        .map_err(|e| ApiError::from_db(&e))
}

pub async fn get(app: &App, actor: &Actor) -> ApiResult<MoneySettings> {
    let t = actor.require(Permission::OrdersRead)?;
    Ok((*of(app, t.org()).await?).clone())
}

fn text(
    errors: &mut Vec<FieldError>,
    field: &str,
    v: Option<String>,
    max: usize,
) -> Option<String> {
    let v = v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())?;
    if v.chars().count() > max {
        errors.push(FieldError::new(field, format!("at most {max} characters")));
    }
    if v.chars().any(|c| c.is_control() && c != '\n') {
        errors.push(FieldError::new(field, "no control characters"));
    }
    Some(v)
}

/// Checks and stores the org's money settings (audited). New orders are
/// priced with them; orders already placed keep what they were sold at.
pub async fn put(app: &App, actor: &Actor, s: MoneySettings) -> ApiResult<MoneySettings> {
    let t = actor.require(Permission::SettingsManage)?;
    let mut errors = Vec::new();
    if !(s.currency.len() == 3 && s.currency.bytes().all(|b| b.is_ascii_uppercase())) {
        errors.push(FieldError::new(
            "currency",
            "an ISO 4217 code in capitals, e.g. ZAR",
        ));
    }
    if !(0..=10_000).contains(&s.tax_bp) {
        errors.push(FieldError::new("tax_bp", "from 0 to 10000 (100%)"));
    }
    if !(0..=100_000_000).contains(&s.fee_per_ticket_cents) {
        errors.push(FieldError::new(
            "fee_per_ticket_cents",
            "from 0 to 100000000",
        ));
    }
    let tax_name = s.tax_name.trim().to_string();
    if tax_name.is_empty()
        || tax_name.chars().count() > 20
        || tax_name.chars().any(char::is_control)
    {
        errors.push(FieldError::new("tax_name", "1 to 20 characters"));
    }
    if s.invoice_prefix.is_empty()
        || s.invoice_prefix.len() > 10
        || !s
            .invoice_prefix
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        errors.push(FieldError::new(
            "invoice_prefix",
            "1 to 10 capital letters or digits",
        ));
    }
    let after = MoneySettings {
        currency: s.currency,
        tax_bp: s.tax_bp,
        tax_name,
        fee_per_ticket_cents: s.fee_per_ticket_cents,
        seller_name: text(&mut errors, "seller_name", s.seller_name, 200),
        seller_address: text(&mut errors, "seller_address", s.seller_address, 500),
        seller_tax_number: text(&mut errors, "seller_tax_number", s.seller_tax_number, 50),
        invoice_prefix: s.invoice_prefix,
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let before = load(app.db(), t.org()).await?;
    let now = app.kernel.now();
    let audit = actor
        .audit("money.settings_update", "money_settings")
        .object(t.org())
        .before(&before)
        .after(&after)
        .stmt(now);
    let mut tx = app.db().begin().await?;
    tx.run_all(vec![put_stmt(t, &after, now), audit]).await?;
    tx.commit().await?;
    app.state::<SettingsCache>().0.invalidate(&t.org()).await;
    Ok(after)
}

fn put_stmt(t: &Tenant, s: &MoneySettings, now: i64) -> Stmt {
    Stmt::new(
        "INSERT INTO money_settings (org_id, currency, tax_bp, tax_name, fee_per_ticket_cents, seller_name,
             seller_address, seller_tax_number, invoice_prefix, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (org_id) DO UPDATE SET currency = $2, tax_bp = $3, tax_name = $4,
             fee_per_ticket_cents = $5, seller_name = $6, seller_address = $7, seller_tax_number = $8,
             invoice_prefix = $9, updated_at = $10",
    )
    .bind(t.org())
    .bind(s.currency.clone())
    .bind(s.tax_bp)
    .bind(s.tax_name.clone())
    .bind(s.fee_per_ticket_cents)
    .bind(s.seller_name.clone())
    .bind(s.seller_address.clone())
    .bind(s.seller_tax_number.clone())
    .bind(s.invoice_prefix.clone())
    .bind(now)
}

/// Takes the org's next invoice number inside the paying transaction: the
/// counter row is locked until it ends, so numbers are handed out one at a
/// time, and a rolled-back payment gives its number back (no gaps).
pub async fn next_invoice_number(tx: &mut Tx, org: OrgId) -> Result<i64, sqlx::Error> {
    let sql = "INSERT INTO invoice_counters (org_id, last) VALUES ($1, 1)
               ON CONFLICT (org_id) DO UPDATE SET last = invoice_counters.last + 1
               RETURNING last";
    tx_run!(tx, c => sqlx::query_scalar(sql).bind(org).fetch_one(c).await)
}

/// Records the order's invoice under `number`.
pub async fn record_invoice(
    tx: &mut Tx,
    t: &Tenant,
    number: i64,
    order: kernel::ids::OrderId,
    now: i64,
) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO invoices (org_id, number, order_id, issued_at) VALUES ($1, $2, $3, $4)";
    tx_run!(tx, c => sqlx::query(sql).bind(t.org()).bind(number).bind(order).bind(now)
        .execute(c).await.map(|_| ()))
}

/// The order's invoice number and when it was issued, if it has one.
pub async fn invoice_of(
    db: &Db,
    t: &Tenant,
    order: kernel::ids::OrderId,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let sql = "SELECT number, issued_at FROM invoices WHERE org_id = $1 AND order_id = $2";
    db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(order).fetch_optional(p).await)
}

/// `INV-000042`.
pub fn invoice_label(prefix: &str, number: i64) -> String {
    format!("{prefix}-{number:06}")
}

/// The order's invoice as a PDF (its file name and bytes); 409 while the
/// order has none (not paid yet, or free).
pub async fn invoice_pdf(
    app: &App,
    t: &Tenant,
    order: &super::domain::OrderView,
) -> ApiResult<(String, Vec<u8>)> {
    let Some((number, issued)) = invoice_of(app.db(), t, order.id).await? else {
        return Err(ApiError::Conflict(
            "the order has no invoice: it is not paid, or it was free".into(),
        ));
    };
    let s = of(app, t.org()).await?;
    let catalog = crate::events::catalog(app, t, order.event_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let cur = &order.currency;
    let money = |c: i64| crate::money::format(c, cur);
    let label = invoice_label(&s.invoice_prefix, number);
    let mut lines: Vec<(String, String)> = order
        .lines
        .iter()
        .map(|l| {
            let mut d = format!(
                "{} × {} at {}",
                l.quantity,
                l.name,
                money(l.unit_price_cents)
            );
            if l.discount_cents > 0 {
                d.push_str(&format!(", less {}", money(l.discount_cents)));
            }
            (d, money(l.total_cents))
        })
        .collect();
    if order.fee_cents > 0 {
        lines.push(("Booking fee".into(), money(order.fee_cents)));
    }
    let mut totals = vec![("Total".to_string(), money(order.total_cents))];
    if order.tax_rate_bp > 0 {
        totals.push((
            format!(
                "{} ({}%) included",
                s.tax_name,
                crate::money::amount(order.tax_rate_bp, "XXX")
            ),
            money(order.tax_cents),
        ));
    }
    totals.push(("Paid".into(), money(order.paid_cents)));
    if order.refunded_cents > 0 {
        totals.push(("Refunded".into(), money(order.refunded_cents)));
    }
    let org_name = crate::identity::org_by_id(app, t.org())
        .await?
        .map(|o| o.name.clone())
        .unwrap_or_else(|| t.slug().to_string());
    let doc = ticketpdf::InvoiceDoc {
        title: if s.tax_bp > 0 && s.seller_tax_number.is_some() {
            "Tax invoice".into()
        } else {
            "Invoice".into()
        },
        number: label.clone(),
        issued: kernel::clock::rfc3339(issued)[..10].to_string(),
        seller_name: s.seller_name.clone().unwrap_or(org_name),
        seller_address: s.seller_address.clone(),
        seller_tax_line: s
            .seller_tax_number
            .as_ref()
            .map(|n| format!("{} number {n}", s.tax_name)),
        buyer: format!("{} <{}>", order.buyer.name, order.buyer.email),
        order_number: order.id.to_string(),
        event: catalog.event.name.clone(),
        lines,
        totals,
    };
    let pdf = tokio::task::spawn_blocking(move || ticketpdf::invoice(&doc))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok((format!("{label}.pdf"), pdf))
}
