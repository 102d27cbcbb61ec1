//! What an order costs: lines (quantity × unit price − discount), a booking
//! fee per priced ticket, and the VAT included in it all. Prices are
//! VAT-inclusive: the tax is *shown*, never added. Integer minor units
//! throughout, one rounding (the tax), so the parts always add up to the
//! total and no cent appears or vanishes.

/// Basis points: 1,500 is 15%.
pub type BasisPoints = i64;

/// The org's money settings that price an order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    /// VAT included in prices and fees (0: none shown).
    pub tax_bp: BasisPoints,
    /// Added once per priced ticket (free tickets carry no fee).
    pub fee_per_ticket_cents: i64,
}

/// One line of a cart.
#[derive(Clone, Copy, Debug)]
pub struct Line {
    pub quantity: i64,
    pub unit_price_cents: i64,
    /// Taken off this line (at most its gross).
    pub discount_cents: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Σ lines (after their discounts).
    pub lines_cents: i64,
    pub fee_cents: i64,
    /// lines + fee: what the buyer pays.
    pub total_cents: i64,
    /// The VAT included in the total.
    pub tax_cents: i64,
}

/// Largest order total accepted (a trillion minor units): nothing below
/// overflows an i64, whatever the rates.
pub const MAX_TOTAL: i64 = 1_000_000_000_000;

/// The line's amount after its discount.
#[cfg(test)]
pub fn line_total(l: &Line) -> i64 {
    (l.quantity * l.unit_price_cents - l.discount_cents).max(0)
}

/// Prices a cart; `None` when it is too large to be an order.
pub fn price(lines: &[Line], r: Rates) -> Option<Totals> {
    let mut lines_cents: i64 = 0;
    let mut priced_tickets: i64 = 0;
    for l in lines {
        let gross = l.quantity.checked_mul(l.unit_price_cents)?;
        lines_cents = lines_cents.checked_add((gross - l.discount_cents.min(gross)).max(0))?;
        if l.unit_price_cents > 0 {
            priced_tickets = priced_tickets.checked_add(l.quantity)?;
        }
    }
    let fee_cents = priced_tickets.checked_mul(r.fee_per_ticket_cents.max(0))?;
    let total_cents = lines_cents.checked_add(fee_cents)?;
    if total_cents > MAX_TOTAL {
        return None;
    }
    Some(Totals {
        lines_cents,
        fee_cents,
        total_cents,
        tax_cents: included_tax(total_cents, r.tax_bp),
    })
}

/// The VAT inside a VAT-inclusive amount, rounded half up:
/// amount × rate / (1 + rate).
pub fn included_tax(amount: i64, tax_bp: BasisPoints) -> i64 {
    if tax_bp <= 0 || amount <= 0 {
        return 0;
    }
    let num = amount as i128 * tax_bp as i128;
    let den = 10_000i128 + tax_bp as i128;
    ((2 * num + den) / (2 * den)) as i64
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fifteen_percent_vat_inside_a_price() {
        // R115.00 at 15% holds R15.00 of VAT.
        assert_eq!(included_tax(11500, 1500), 1500);
        assert_eq!(included_tax(100, 1500), 13);
        assert_eq!(included_tax(0, 1500), 0);
        assert_eq!(included_tax(999, 0), 0);
        let t = price(
            &[
                Line {
                    quantity: 2,
                    unit_price_cents: 15000,
                    discount_cents: 1000,
                },
                Line {
                    quantity: 3,
                    unit_price_cents: 0,
                    discount_cents: 0,
                },
            ],
            Rates {
                tax_bp: 1500,
                fee_per_ticket_cents: 500,
            },
        )
        .unwrap();
        assert_eq!(t.lines_cents, 29000);
        assert_eq!(t.fee_cents, 1000, "free tickets carry no fee");
        assert_eq!(t.total_cents, 30000);
        assert_eq!(t.tax_cents, 3913);
    }

    fn line() -> impl Strategy<Value = Line> {
        (1i64..50, 0i64..5_000_000, 0i64..10_000_000).prop_map(|(q, p, d)| Line {
            quantity: q,
            unit_price_cents: p,
            discount_cents: d % (q * p + 1),
        })
    }

    proptest! {
        /// Over random carts, discounts, rates and partial refunds: the
        /// parts add up to the total, tax never exceeds it, and refunds
        /// never return more than was paid nor lose a cent.
        #[test]
        fn no_cent_appears_or_vanishes(
            lines in prop::collection::vec(line(), 1..20),
            tax_bp in 0i64..5000,
            fee in 0i64..10_000,
            refunds in prop::collection::vec(0i64..10_000_000, 0..10),
        ) {
            let r = Rates { tax_bp, fee_per_ticket_cents: fee };
            let t = price(&lines, r).unwrap();
            prop_assert_eq!(t.lines_cents, lines.iter().map(line_total).sum::<i64>());
            prop_assert_eq!(t.total_cents, t.lines_cents + t.fee_cents);
            prop_assert!(t.tax_cents >= 0 && t.tax_cents <= t.total_cents);
            // Net plus tax is the total, exactly.
            let net = t.total_cents - t.tax_cents;
            prop_assert_eq!(net + t.tax_cents, t.total_cents);
            // The tax is within half a cent of the exact figure.
            let exact = t.total_cents as f64 * tax_bp as f64 / (10_000.0 + tax_bp as f64);
            prop_assert!((t.tax_cents as f64 - exact).abs() <= 0.5 + 1e-9);
            // Partial refunds, each capped at what is left (as the refund
            // step does): never more than paid, and paid = left + refunded.
            let paid = t.total_cents;
            let mut refunded = 0i64;
            for want in refunds {
                let left = paid - refunded;
                if left == 0 { break; }
                let amount = want.clamp(1, left);
                refunded += amount;
                prop_assert!(refunded <= paid);
                prop_assert_eq!((paid - refunded) + refunded, paid);
            }
        }
    }
}
