//! The sales report of an event: per ticket type and per day (in the
//! venue's time zone), tickets sold and money.

use std::collections::BTreeMap;

use kernel::{
    ApiError, ApiResult, Permission,
    ids::{EventId, TicketTypeId},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{App, identity::Actor, tickets};

/// Counts are read in 15-minute slots, so that every zone's midnight
/// (offsets of :30 and :45 included) falls on a slot boundary.
const SLOT_MICROS: i64 = 15 * 60 * 1_000_000;

/// Money and tickets. Sold and revenue count the tickets issued at their
/// price; discounts, fees, the VAT inside the amounts and refunds come from
/// the orders that took money, each shared out over its lines (placed on
/// the order's day).
#[derive(Clone, Debug, Default, Serialize, ToSchema, PartialEq)]
pub struct SalesFigures {
    /// Tickets issued.
    pub sold: i64,
    /// Ticket price times tickets sold, in cents.
    pub revenue_cents: i64,
    pub discounts_cents: i64,
    pub refunds_cents: i64,
    pub fees_cents: i64,
    pub tax_cents: i64,
}

impl SalesFigures {
    fn add(&mut self, o: &SalesFigures) {
        self.sold += o.sold;
        self.revenue_cents += o.revenue_cents;
        self.discounts_cents += o.discounts_cents;
        self.refunds_cents += o.refunds_cents;
        self.fees_cents += o.fees_cents;
        self.tax_cents += o.tax_cents;
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TypeLine {
    pub ticket_type_id: TicketTypeId,
    pub name: String,
    /// ISO 4217 code of this type's price (an event may sell in several).
    pub currency: String,
    #[serde(flatten)]
    pub figures: SalesFigures,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayLine {
    /// The venue's calendar day, `YYYY-MM-DD`.
    pub date: String,
    pub ticket_type_id: TicketTypeId,
    pub name: String,
    pub currency: String,
    #[serde(flatten)]
    pub figures: SalesFigures,
}

/// The figures of every ticket type priced in one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrencyTotal {
    pub currency: String,
    #[serde(flatten)]
    pub figures: SalesFigures,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SalesReport {
    pub event_id: EventId,
    pub event_name: String,
    /// The zone days are counted in (the event's).
    pub timezone: String,
    pub by_ticket_type: Vec<TypeLine>,
    /// Days with sales only, oldest first.
    pub by_day: Vec<DayLine>,
    /// One total per currency: amounts in different currencies are never
    /// added together.
    pub totals: Vec<CurrencyTotal>,
}

pub async fn sales(app: &App, actor: &Actor, event: EventId) -> ApiResult<SalesReport> {
    let t = actor.require(Permission::OrdersRead)?;
    let catalog = crate::events::catalog(app, t, event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let e = &catalog.event;
    let counts = tickets::issued_by_type(app, t, event, SLOT_MICROS).await?;
    let tz = jiff::tz::TimeZone::get(&e.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    let mut per_type: BTreeMap<TicketTypeId, SalesFigures> = BTreeMap::new();
    let mut per_day: BTreeMap<(String, TicketTypeId), SalesFigures> = BTreeMap::new();
    for (tt, slot, n) in counts {
        let price = catalog.ticket_type(tt).map(|x| x.price_cents).unwrap_or(0);
        let f = SalesFigures {
            sold: n,
            revenue_cents: n * price,
            ..SalesFigures::default()
        };
        let day = jiff::Timestamp::from_microsecond(slot * SLOT_MICROS)
            .map(|ts| tz.to_datetime(ts).date().to_string())
            .unwrap_or_default();
        per_type.entry(tt).or_default().add(&f);
        per_day.entry((day, tt)).or_default().add(&f);
    }
    for m in crate::sales::money_shares(app, t, event)
        .await
        .map_err(ApiError::from)?
    {
        let f = SalesFigures {
            discounts_cents: m.discount_cents,
            fees_cents: m.fee_cents,
            tax_cents: m.tax_cents,
            refunds_cents: m.refunds_cents,
            ..SalesFigures::default()
        };
        let slot = m.at / SLOT_MICROS;
        let day = jiff::Timestamp::from_microsecond(slot * SLOT_MICROS)
            .map(|ts| tz.to_datetime(ts).date().to_string())
            .unwrap_or_default();
        per_type.entry(m.ticket_type_id).or_default().add(&f);
        per_day.entry((day, m.ticket_type_id)).or_default().add(&f);
    }
    let of_type = |id: TicketTypeId| {
        catalog
            .ticket_type(id)
            .map(|x| (x.name.clone(), x.currency.clone()))
            .unwrap_or_default()
    };
    let mut totals: BTreeMap<String, SalesFigures> = BTreeMap::new();
    // Every ticket type, sold or not, in the catalog's order.
    let by_ticket_type = e
        .ticket_types
        .iter()
        .map(|tt| {
            let figures = per_type.remove(&tt.id).unwrap_or_default();
            totals.entry(tt.currency.clone()).or_default().add(&figures);
            TypeLine {
                ticket_type_id: tt.id,
                name: tt.name.clone(),
                currency: tt.currency.clone(),
                figures,
            }
        })
        .collect();
    let by_day = per_day
        .into_iter()
        .map(|((date, tt), figures)| {
            let (name, currency) = of_type(tt);
            DayLine {
                date,
                ticket_type_id: tt,
                name,
                currency,
                figures,
            }
        })
        .collect();
    Ok(SalesReport {
        event_id: event,
        event_name: e.name.clone(),
        timezone: e.timezone.clone(),
        by_ticket_type,
        by_day,
        totals: totals
            .into_iter()
            .map(|(currency, figures)| CurrencyTotal { currency, figures })
            .collect(),
    })
}

/// The report's days as CSV: one row per (day, ticket type), amounts in
/// the currency's units.
pub fn csv(r: &SalesReport) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let money = crate::money::amount;
    w.write_record([
        "date",
        "ticket_type_id",
        "ticket_type",
        "sold",
        "revenue",
        "discounts",
        "refunds",
        "fees",
        "tax",
        "currency",
    ])
    .map_err(|e| e.to_string())?;
    for d in &r.by_day {
        let f = &d.figures;
        w.write_record([
            d.date.clone(),
            d.ticket_type_id.to_string(),
            super::domain::defuse(d.name.clone()),
            f.sold.to_string(),
            money(f.revenue_cents, &d.currency),
            money(f.discounts_cents, &d.currency),
            money(f.refunds_cents, &d.currency),
            money(f.fees_cents, &d.currency),
            money(f.tax_cents, &d.currency),
            d.currency.clone(),
        ])
        .map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}
