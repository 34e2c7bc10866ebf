//! The paper's patches (§4.1): "extracting random 224×224 patches (and their horizontal
//! reflections) from the 256×256 images", and at test time "five 224×224 patches (the four corner
//! patches and the center patch) as well as their horizontal reflections".

/// The `crop`×`crop` patch at (`x`, `y`) of a `size`×`size`×3 image (HWC).
pub fn crop(src: &[u8], size: usize, x: usize, y: usize, crop: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(crop * crop * 3);
    for row in y..y + crop {
        let start = (row * size + x) * 3;
        out.extend_from_slice(&src[start..start + crop * 3]);
    }
    out
}

/// Patch positions of the paper's 10-crop evaluation (§4.1): the four corners and the centre, as
/// (x, y), in torchvision `TenCrop` order (top-left, top-right, bottom-left, bottom-right, centre);
/// the loader emits these five, then the same five mirrored.
pub fn five_crop_positions(size: u32, crop: u32) -> [(u32, u32); 5] {
    let far = size - crop;
    let c = crate::prep::center_crop_offset(size, crop);
    [(0, 0), (far, 0), (0, far), (far, far), (c, c)]
}
