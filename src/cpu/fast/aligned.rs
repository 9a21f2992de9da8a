//! Floats in cache-line-aligned storage: the packed weights and the states the fast engine's
//! kernels read 16 floats at a time, so that no vector load straddles two cache lines.

/// 16 floats on a cache line of their own. The packed weights are stored as vectors of these,
/// so that every row of a tile (a multiple of 16 floats) starts on a cache line and the
/// kernel's vector loads never straddle two lines (a `Vec<f32>` of weights starts wherever the
/// allocator puts it: 16 bytes past a page for the large ones).
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// Floats in cache-line-aligned storage (see [`Line`]), read as a slice.
#[derive(Debug, Clone, Default)]
pub(crate) struct AlignedFloats {
    lines: Vec<Line>,
    len: usize,
}

impl From<Vec<f32>> for AlignedFloats {
    fn from(v: Vec<f32>) -> Self {
        let mut lines = vec![Line::default(); v.len().div_ceil(16)];
        bytemuck::cast_slice_mut::<Line, f32>(&mut lines)[..v.len()].copy_from_slice(&v);
        AlignedFloats {
            lines,
            len: v.len(),
        }
    }
}

impl AlignedFloats {
    /// `len` zeros.
    pub(crate) fn zeroed(len: usize) -> Self {
        let mut v = AlignedFloats::default();
        v.resize(len);
        v
    }

    /// Grows or shrinks to `len` floats; the ones kept keep their values, new ones are zero.
    pub(crate) fn resize(&mut self, len: usize) {
        if len < self.len {
            // Zero the tail of the last line kept, so that growing again gives zeros.
            let end = len.div_ceil(16) * 16;
            bytemuck::cast_slice_mut::<Line, f32>(&mut self.lines)[len..end].fill(0.0);
        }
        self.lines.resize(len.div_ceil(16), Line::default());
        self.len = len;
    }

    /// Floats it holds room for.
    pub(crate) fn capacity(&self) -> usize {
        self.lines.capacity() * 16
    }
}

impl std::ops::Deref for AlignedFloats {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &bytemuck::cast_slice(&self.lines)[..self.len]
    }
}

impl std::ops::DerefMut for AlignedFloats {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut bytemuck::cast_slice_mut(&mut self.lines)[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_floats_start_on_a_cache_line_and_resize_like_a_vec() {
        let v = AlignedFloats::from((0..37).map(|i| i as f32).collect::<Vec<_>>());
        assert_eq!(v.as_ptr() as usize % 64, 0);
        assert_eq!(v.len(), 37);
        assert_eq!(v[36], 36.0);
        let mut v = v;
        v.resize(5);
        assert_eq!(&v[..], &[0.0, 1.0, 2.0, 3.0, 4.0]);
        // Grown again: the values kept stay, the new ones are zero.
        v.resize(40);
        assert_eq!(v[4], 4.0);
        assert!(v[5..].iter().all(|&x| x == 0.0));
        v[39] = 1.5;
        assert_eq!(v[39], 1.5);
        assert_eq!(AlignedFloats::zeroed(0).len(), 0);
    }
}
