//! Image attachments: what their bytes really are, how large they are, and their thumbnails
//! (issue 11).
//!
//! Pure functions over bytes, bounded by the limits they are given (a decompression bomb is
//! refused by its header, before anything is decoded). They must not do I/O: the files domain
//! reads and writes the objects.

use std::io::Cursor;

use image::{ImageFormat, ImageReader};

/// The content types that get previews: what the image crate is built to decode here.
const PREVIEWABLE: [(&str, ImageFormat); 4] = [
    ("image/png", ImageFormat::Png),
    ("image/jpeg", ImageFormat::Jpeg),
    ("image/gif", ImageFormat::Gif),
    ("image/webp", ImageFormat::WebP),
];

/// Whether `content_type` (its essence, lowercase) is an image format Palaver previews.
pub fn previewable(content_type: &str) -> bool {
    PREVIEWABLE.iter().any(|(ct, _)| *ct == content_type)
}

/// The previewable image format the bytes begin with, as its content type.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    let format = image::guess_format(head).ok()?;
    PREVIEWABLE.iter().find(|(_, f)| *f == format).map(|(ct, _)| *ct)
}

/// A preview: the image's own dimensions, and the thumbnail's encoded bytes.
#[derive(Debug)]
pub struct Thumbnail {
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
}

/// Why an image got no thumbnail (it is still attached, without one).
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("the image is {0}×{1} pixels; previews are made of images up to {2} pixels")]
    TooManyPixels(u32, u32, u64),
    #[error("the image cannot be decoded: {0}")]
    Undecodable(String),
}

/// An image's dimensions from its first bytes (its header), without decoding it.
pub fn dimensions(head: &[u8]) -> Result<(u32, u32), PreviewError> {
    ImageReader::new(Cursor::new(head))
        .with_guessed_format()
        .map_err(|e| PreviewError::Undecodable(e.to_string()))?
        .into_dimensions()
        .map_err(|e| PreviewError::Undecodable(e.to_string()))
}

/// The thumbnail of an image, fitting in a `size`×`size` square (never enlarged): JPEG for
/// opaque images, PNG for ones with transparency.
pub fn thumbnail(bytes: &[u8], size: u32, max_pixels: u64) -> Result<Thumbnail, PreviewError> {
    let undecodable = |e: image::ImageError| PreviewError::Undecodable(e.to_string());
    let reader = || ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| PreviewError::Undecodable(e.to_string()));
    let (width, height) = reader()?.into_dimensions().map_err(undecodable)?;
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(PreviewError::TooManyPixels(width, height, max_pixels));
    }
    let mut decoder = reader()?;
    let mut limits = image::Limits::default();
    // Four bytes per pixel, twice (decoded and resized), plus room for the decoder itself.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    decoder.limits(limits);
    let image = decoder.decode().map_err(undecodable)?;
    let small = if width > size || height > size { image.thumbnail(size, size) } else { image };
    let mut out = Cursor::new(Vec::new());
    let content_type = if small.color().has_alpha() {
        small.write_to(&mut out, ImageFormat::Png).map_err(undecodable)?;
        "image/png"
    } else {
        small.to_rgb8().write_to(&mut out, ImageFormat::Jpeg).map_err(undecodable)?;
        "image/jpeg"
    };
    Ok(Thumbnail { width, height, bytes: out.into_inner(), content_type })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb, Rgba};

    fn encoded(img: image::DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn sniffs_previewable_formats_only() {
        let png = encoded(ImageBuffer::from_pixel(4, 4, Rgb([1u8, 2, 3])).into(), ImageFormat::Png);
        assert_eq!(sniff(&png), Some("image/png"));
        let jpeg = encoded(ImageBuffer::from_pixel(4, 4, Rgb([1u8, 2, 3])).into(), ImageFormat::Jpeg);
        assert_eq!(sniff(&jpeg), Some("image/jpeg"));
        assert_eq!(sniff(b"%PDF-1.7 not an image"), None);
        assert_eq!(sniff(b""), None);
        assert!(previewable("image/webp") && !previewable("image/svg+xml"));
    }

    #[test]
    fn thumbnails_fit_the_box_and_keep_the_aspect_ratio() {
        let png = encoded(ImageBuffer::from_pixel(800, 400, Rgb([200u8, 10, 10])).into(), ImageFormat::Png);
        let t = thumbnail(&png, 100, 1_000_000).unwrap();
        assert_eq!((t.width, t.height), (800, 400), "the original's dimensions");
        let small = image::load_from_memory(&t.bytes).unwrap();
        assert_eq!((small.width(), small.height()), (100, 50));
        assert_eq!(t.content_type, "image/jpeg", "opaque images preview as JPEG");
        assert_eq!(dimensions(&png[..png.len().min(64)]).unwrap(), (800, 400), "a PNG's size is in its first bytes");
    }

    #[test]
    fn transparency_is_kept_and_small_images_are_not_enlarged() {
        let png = encoded(ImageBuffer::from_pixel(20, 10, Rgba([0u8, 0, 0, 0])).into(), ImageFormat::Png);
        let t = thumbnail(&png, 100, 1_000_000).unwrap();
        assert_eq!(t.content_type, "image/png");
        let small = image::load_from_memory(&t.bytes).unwrap();
        assert_eq!((small.width(), small.height()), (20, 10));
    }

    #[test]
    fn oversized_and_broken_images_get_no_thumbnail() {
        let png = encoded(ImageBuffer::from_pixel(300, 300, Rgb([0u8, 0, 0])).into(), ImageFormat::Png);
        assert!(matches!(thumbnail(&png, 100, 10_000), Err(PreviewError::TooManyPixels(300, 300, 10_000))));
        assert!(matches!(thumbnail(&png[..png.len() / 2], 100, 1_000_000), Err(PreviewError::Undecodable(_))));
    }
}
