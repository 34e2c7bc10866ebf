//! Layout: HWC pixels to the CHW planes of an NCHW batch.

/// HWC → CHW.
pub fn hwc_to_chw<T: Copy>(img: &[T], pixels: usize) -> Vec<T> {
    (0..3)
        .flat_map(|c| (0..pixels).map(move |p| img[p * 3 + c]))
        .collect()
}
