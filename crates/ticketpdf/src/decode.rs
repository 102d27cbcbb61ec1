//! Reads a ticket PDF back, as a buyer's phone or a test would: the text on
//! its page and the QR codes of its images, decoded from the pixels.

use lopdf::{Document, Object};

/// The text of every page.
pub fn text(pdf: &[u8]) -> Result<String, String> {
    let doc = Document::load_mem(pdf).map_err(|e| format!("not a PDF: {e}"))?;
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    doc.extract_text(&pages)
        .map_err(|e| format!("no text: {e}"))
}

/// The content of every QR code found in the document's grayscale images.
pub fn qr_codes(pdf: &[u8]) -> Result<Vec<String>, String> {
    let doc = Document::load_mem(pdf).map_err(|e| format!("not a PDF: {e}"))?;
    let mut found = Vec::new();
    for object in doc.objects.values() {
        let Object::Stream(stream) = object else {
            continue;
        };
        let dict = &stream.dict;
        let is_image = dict
            .get(b"Subtype")
            .and_then(|s| s.as_name())
            .is_ok_and(|n| n == b"Image");
        if !is_image {
            continue;
        }
        let dim = |k: &[u8]| dict.get(k).and_then(|v| v.as_i64()).map(|v| v as usize);
        let (Ok(w), Ok(h)) = (dim(b"Width"), dim(b"Height")) else {
            continue;
        };
        let pixels = stream
            .decompressed_content()
            .unwrap_or_else(|_| stream.content.clone());
        if pixels.len() < w * h {
            return Err(format!("an image of {w}x{h} has {} bytes", pixels.len()));
        }
        // One byte per pixel (DeviceGray); three would be RGB.
        let bpp = pixels.len() / (w * h);
        let mut img =
            rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| pixels[(y * w + x) * bpp]);
        for grid in img.detect_grids() {
            let (_, content) = grid
                .decode()
                .map_err(|e| format!("a QR code that does not decode: {e}"))?;
            found.push(content);
        }
    }
    Ok(found)
}
