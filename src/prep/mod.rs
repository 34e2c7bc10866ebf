//! Preparing inputs (paper §2): discovering files, decoding them to RGB, resizing the short side and
//! cropping the centre.

mod decode;
mod decode_window;
mod discover;
mod resize;

pub use decode::{
    cmyk_to_rgb, decode_rgb, draft_denominator, is_jpeg, looks_like_image, max_file_bytes,
    DecodeOptions, RejectReason, RgbImage, DEFAULT_MAX_PIXELS,
};
pub use decode_window::{decode_jpeg_window, image_dims, window_eighths, ScaledRegion, Window};
pub use discover::{discover_folder, discover_list, Inputs, Source};
pub use resize::{capped_dims, center_crop_offset, crop_rgb, resized_dims, ResizeCrop};
