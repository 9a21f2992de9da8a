//! Host side of `shaders/weights/`: the weight readers. Every kernel family reads its weights
//! (binding 2) only through `load_w(i) -> vec4<f32>` and `load_f32x4` (the peepholes), starts
//! and ends each product's sum with `w_start`/`w_end` (GEMM) or `w_scaled` (step), the scales read by `w_scale`; the reader
//! files, prepended to the family's WGSL, define the binding and those functions for one
//! weight type and storage.
//!
//! | reader | binding 2 | files |
//! |---|---|---|
//! | [`Reader::F32`] | `array<vec4<f32>>` | `f32.wgsl`, `float.wgsl` |
//! | [`Reader::F16`] | `array<vec2<u32>>`, two halves per `u32` | `f16.wgsl`, `float.wgsl` |
//! | [`Reader::Texture`] | `texture_2d<f32>` (`rgba32float` or `rgba16float`) | `texture.wgsl`, `float.wgsl` |
//! | [`Reader::I8`] | `array<u32>`, four signed bytes per `u32`, then float32 scales | `i8.wgsl` |

use super::bindings::WeightsBinding;
use crate::weights::WeightsDtype;

/// The WGSL of one kernel module, assembled at compile time: the files named (under
/// `shaders/`), each followed by a newline — a weight reader first, then the family's files.
macro_rules! wgsl {
    ($($file:literal),+ $(,)?) => {
        concat!($(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $file)), "\n"),+)
    };
}
pub(crate) use wgsl;

/// The WGSL of a kernel module whose weights `reader` reads: the reader's files, then the
/// family's `files` (under `shaders/`), chosen at run time among modules assembled at compile
/// time.
macro_rules! with_reader {
    ($reader:expr $(, $file:literal)* $(,)?) => {{
        // (Where the caller has them in scope already, these are the same items.)
        #[allow(unused_imports)]
        use $crate::gpu::kernels::weights::{wgsl, Reader};
        match $reader {
            Reader::F32 => wgsl!("weights/f32.wgsl", "weights/float.wgsl" $(, $file)*),
            Reader::F16 => wgsl!("weights/f16.wgsl", "weights/float.wgsl" $(, $file)*),
            Reader::Texture => wgsl!("weights/texture.wgsl", "weights/float.wgsl" $(, $file)*),
            Reader::I8 => wgsl!("weights/i8.wgsl" $(, $file)*),
        }
    }};
}
pub(crate) use with_reader;

/// Which weight reader a kernel module starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Reader {
    /// `shaders/weights/f32.wgsl`.
    F32,
    /// `shaders/weights/f16.wgsl`.
    F16,
    /// `shaders/weights/texture.wgsl`: a texture reads both float types the same way.
    Texture,
    /// `shaders/weights/i8.wgsl` (always a buffer: int8 weights are never put in a texture).
    I8,
}

impl Reader {
    /// The reader of weights of type `dtype` bound as `binding`.
    pub fn of(dtype: WeightsDtype, binding: WeightsBinding) -> Reader {
        match (binding, dtype) {
            (_, WeightsDtype::I8) => Reader::I8,
            (WeightsBinding::Texture, _) => Reader::Texture,
            (WeightsBinding::Buffer, WeightsDtype::F32) => Reader::F32,
            (WeightsBinding::Buffer, WeightsDtype::F16) => Reader::F16,
        }
    }
}

/// Texels per row of a weights texture: `shaders/weights/texture.wgsl` finds packed vec4 `i`
/// at texel `(i mod TEXTURE_WIDTH, i / TEXTURE_WIDTH)` (its `TEXTURE_WIDTH`).
pub(crate) const TEXTURE_WIDTH: u32 = 4096;

#[cfg(test)]
mod tests {
    use super::super::contract::Shader;
    use super::*;

    /// Each reader defines every function the families call, and the texture reader's row
    /// width is the host's.
    #[test]
    fn readers_agree_with_the_host() {
        for reader in [Reader::F32, Reader::F16, Reader::Texture, Reader::I8] {
            let shader = Shader::parse("weights", with_reader!(reader));
            for f in [
                "load_w",
                "load_f32x4",
                "w_scale",
                "w_start",
                "w_end",
                "w_scaled",
            ] {
                shader.function(f);
            }
        }
        let texture = Shader::parse("weights/texture.wgsl", wgsl!("weights/texture.wgsl"));
        assert_eq!(texture.constant("TEXTURE_WIDTH"), f64::from(TEXTURE_WIDTH));
    }
}
