//! One ticket as a one-page A6 PDF: the event, when (already written in the
//! venue's time zone by the caller), where, the ticket type, the holder, the
//! seat when there is one, the order number, and the ticket's code as a QR
//! image that a gate scanner reads from paper or a phone screen.
//!
//! The QR code is a grayscale image (not vector paths) so that any reader,
//! a test included, finds it as the page's one image XObject.

use printpdf::{
    BuiltinFont, Color, Mm, Op, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions, Point, Pt,
    RawImage, RawImageData, RawImageFormat, Rgb, TextItem, XObjectTransform,
};

/// What a ticket says. Every text is printed as given.
#[derive(Clone, Debug, Default)]
pub struct TicketDoc {
    /// The organizer, printed small at the top.
    pub organizer: String,
    pub event: String,
    /// The start, e.g. "Sat 31 Dec 2026, 20:00 (Africa/Johannesburg)".
    pub when: String,
    pub venue: Option<String>,
    pub ticket_type: String,
    pub holder: String,
    /// The attendee's answers (question, answer), printed under the holder.
    pub details: Vec<(String, String)>,
    pub seat: Option<String>,
    pub order_number: String,
    /// The exact text the QR code carries.
    pub code: String,
}

/// Pixels per QR module and the quiet zone around the code, in modules.
const MODULE_PX: usize = 8;
const QUIET: usize = 4;
/// Printed size of the QR image.
const QR_MM: f32 = 60.0;

/// The ticket as PDF bytes, or why not (a code too long for a QR code).
pub fn render(t: &TicketDoc) -> Result<Vec<u8>, String> {
    let qr = qr_image(&t.code)?;
    let mut doc = PdfDocument::new(&format!("{} — {}", t.event, t.ticket_type));
    let (w, h) = (Mm(105.0), Mm(148.0));
    let qr_px = qr.width as f32;
    let image = doc.add_image(&qr);

    let mut ops = Vec::new();
    let mut y = 138.0;
    let line = |ops: &mut Vec<Op>, text: &str, font: BuiltinFont, size: f32, y: &mut f32| {
        for (i, chunk) in wrap(text, wrap_width(size)).into_iter().enumerate() {
            if i > 0 {
                *y -= size * 0.45;
            }
            ops.extend([
                Op::StartTextSection,
                Op::SetFont {
                    font: PdfFontHandle::Builtin(font),
                    size: Pt(size),
                },
                Op::SetTextCursor {
                    pos: Point::new(Mm(10.0), Mm(*y)),
                },
                Op::ShowText {
                    items: vec![TextItem::Text(chunk)],
                },
                Op::EndTextSection,
            ]);
        }
        *y -= size * 0.45 + 2.0;
    };
    ops.push(Op::SetFillColor {
        col: Color::Rgb(Rgb {
            r: 0.1,
            g: 0.1,
            b: 0.1,
            icc_profile: None,
        }),
    });
    line(&mut ops, &t.organizer, BuiltinFont::Helvetica, 8.0, &mut y);
    line(&mut ops, &t.event, BuiltinFont::HelveticaBold, 16.0, &mut y);
    line(&mut ops, &t.when, BuiltinFont::Helvetica, 10.0, &mut y);
    if let Some(venue) = &t.venue {
        line(&mut ops, venue, BuiltinFont::Helvetica, 10.0, &mut y);
    }
    y -= 2.0;
    line(
        &mut ops,
        &t.ticket_type,
        BuiltinFont::HelveticaBold,
        12.0,
        &mut y,
    );
    line(&mut ops, &t.holder, BuiltinFont::Helvetica, 10.0, &mut y);
    for (q, a) in t.details.iter().take(8) {
        line(
            &mut ops,
            &format!("{q}: {a}"),
            BuiltinFont::Helvetica,
            8.0,
            &mut y,
        );
    }
    if let Some(seat) = &t.seat {
        line(
            &mut ops,
            &format!("Seat {seat}"),
            BuiltinFont::HelveticaBold,
            11.0,
            &mut y,
        );
    }

    // The QR code, centred near the bottom: scale the image so that its
    // pixels span QR_MM whatever the module count.
    let dpi = qr_px / (QR_MM / 25.4);
    ops.push(Op::UseXobject {
        id: image,
        transform: XObjectTransform {
            translate_x: Some(Mm((105.0 - QR_MM) / 2.0).into()),
            translate_y: Some(Mm(18.0).into()),
            dpi: Some(dpi),
            ..Default::default()
        },
    });
    let mut y = 12.0;
    line(
        &mut ops,
        &format!("Order {}", t.order_number),
        BuiltinFont::Helvetica,
        8.0,
        &mut y,
    );

    let mut warnings = Vec::new();
    Ok(doc
        .with_pages(vec![PdfPage::new(w, h, ops)])
        .save(&PdfSaveOptions::default(), &mut warnings))
}

/// The QR code of `code` as an 8-bit grayscale image (0 dark, 255 light).
fn qr_image(code: &str) -> Result<RawImage, String> {
    let qr = fast_qr::QRBuilder::new(code)
        .ecl(fast_qr::ECL::M)
        .build()
        .map_err(|e| format!("the code does not fit a QR code: {e:?}"))?;
    let modules = qr.size + 2 * QUIET;
    let side = modules * MODULE_PX;
    let mut pixels = vec![255u8; side * side];
    for y in 0..qr.size {
        for x in 0..qr.size {
            if qr[y][x].value() {
                for py in 0..MODULE_PX {
                    let row = ((y + QUIET) * MODULE_PX + py) * side;
                    let start = row + (x + QUIET) * MODULE_PX;
                    pixels[start..start + MODULE_PX].fill(0);
                }
            }
        }
    }
    Ok(RawImage {
        pixels: RawImageData::U8(pixels),
        width: side,
        height: side,
        data_format: RawImageFormat::R8,
        tag: Vec::new(),
    })
}

/// Characters per line at `size` points on the page's 85 mm of width
/// (Helvetica averages about half an em per character).
fn wrap_width(size: f32) -> usize {
    ((85.0 / 25.4 * 72.0) / (size * 0.52)) as usize
}

/// Splits `text` into lines of at most `width` characters at spaces (a word
/// longer than a line is cut).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        while word.chars().count() > width {
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            if !cur.is_empty() {
                lines.push(std::mem::take(&mut cur));
            }
            lines.push(head);
        }
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(&word);
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines.truncate(3);
    lines
}

#[cfg(feature = "decode")]
pub mod decode;

#[cfg(test)]
mod tests;

/// An invoice (tax invoice / receipt) as a one-page A4 PDF. Amounts arrive
/// already formatted in their currency (the platform knows its exponents).
#[derive(Clone, Debug, Default)]
pub struct InvoiceDoc {
    /// "Tax invoice" or "Receipt".
    pub title: String,
    /// `INV-000042`.
    pub number: String,
    pub issued: String,
    pub seller_name: String,
    pub seller_address: Option<String>,
    /// "VAT number 4123456789", when the seller has one.
    pub seller_tax_line: Option<String>,
    pub buyer: String,
    pub order_number: String,
    pub event: String,
    /// Description and amount per line ("2 × General at ZAR 150.00", "ZAR 300.00").
    pub lines: Vec<(String, String)>,
    /// Label and amount ("Booking fee", "Total", "VAT (15%) included", "Refunded").
    pub totals: Vec<(String, String)>,
}

/// The invoice as PDF bytes.
pub fn invoice(d: &InvoiceDoc) -> Result<Vec<u8>, String> {
    let mut doc = PdfDocument::new(&format!("{} {}", d.title, d.number));
    let (w, h) = (Mm(210.0), Mm(297.0));
    let mut ops = vec![Op::SetFillColor {
        col: Color::Rgb(Rgb {
            r: 0.1,
            g: 0.1,
            b: 0.1,
            icc_profile: None,
        }),
    }];
    let text = |ops: &mut Vec<Op>, s: &str, font: BuiltinFont, size: f32, x: f32, y: f32| {
        ops.extend([
            Op::StartTextSection,
            Op::SetFont {
                font: PdfFontHandle::Builtin(font),
                size: Pt(size),
            },
            Op::SetTextCursor {
                pos: Point::new(Mm(x), Mm(y)),
            },
            Op::ShowText {
                items: vec![TextItem::Text(s.to_string())],
            },
            Op::EndTextSection,
        ]);
    };
    let mut y = 280.0;
    text(
        &mut ops,
        &d.title,
        BuiltinFont::HelveticaBold,
        18.0,
        15.0,
        y,
    );
    y -= 8.0;
    text(
        &mut ops,
        &format!("No. {}   ·   {}", d.number, d.issued),
        BuiltinFont::Helvetica,
        10.0,
        15.0,
        y,
    );
    y -= 12.0;
    text(
        &mut ops,
        &d.seller_name,
        BuiltinFont::HelveticaBold,
        11.0,
        15.0,
        y,
    );
    for part in d
        .seller_address
        .iter()
        .flat_map(|a| a.lines())
        .chain(d.seller_tax_line.iter().map(String::as_str))
    {
        y -= 5.0;
        text(&mut ops, part, BuiltinFont::Helvetica, 9.0, 15.0, y);
    }
    y -= 10.0;
    text(
        &mut ops,
        &format!("To: {}", d.buyer),
        BuiltinFont::Helvetica,
        10.0,
        15.0,
        y,
    );
    y -= 5.0;
    text(
        &mut ops,
        &format!("Order {}  ·  {}", d.order_number, d.event),
        BuiltinFont::Helvetica,
        9.0,
        15.0,
        y,
    );
    y -= 12.0;
    for (desc, amount) in &d.lines {
        for (i, chunk) in wrap(desc, 90).into_iter().enumerate() {
            text(&mut ops, &chunk, BuiltinFont::Helvetica, 10.0, 15.0, y);
            if i == 0 {
                text(&mut ops, amount, BuiltinFont::Helvetica, 10.0, 160.0, y);
            }
            y -= 5.5;
        }
    }
    y -= 4.0;
    for (label, amount) in &d.totals {
        text(&mut ops, label, BuiltinFont::HelveticaBold, 10.0, 100.0, y);
        text(&mut ops, amount, BuiltinFont::HelveticaBold, 10.0, 160.0, y);
        y -= 6.0;
    }
    let mut warnings = Vec::new();
    Ok(doc
        .with_pages(vec![PdfPage::new(w, h, ops)])
        .save(&PdfSaveOptions::default(), &mut warnings))
}
