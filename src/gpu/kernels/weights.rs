//! Host side of `shaders/weights/`: the weight readers. Every kernel family reads its weights
//! (binding 2) only through `load_w(i) -> vec4<f32>`; one reader file, prepended to the
//! family's WGSL, defines the binding and that function for one weight type and storage.
//!
//! | reader | binding 2 | file |
//! |---|---|---|
//! | [`Reader::F32`] | `array<vec4<f32>>` | `f32.wgsl` |
//! | [`Reader::F16`] | `array<vec2<u32>>`, two halves per `u32` | `f16.wgsl` |
//! | [`Reader::Texture`] | `texture_2d<f32>` (`rgba32float` or `rgba16float`) | `texture.wgsl` |

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

/// Which weight reader a kernel module starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Reader {
    /// `shaders/weights/f32.wgsl`.
    F32,
    /// `shaders/weights/f16.wgsl`.
    F16,
    /// `shaders/weights/texture.wgsl`: a texture reads both types the same way.
    Texture,
}

impl Reader {
    /// The reader of weights of type `dtype` bound as `binding`.
    pub fn of(dtype: WeightsDtype, binding: WeightsBinding) -> Reader {
        match (binding, dtype) {
            (WeightsBinding::Texture, _) => Reader::Texture,
            (WeightsBinding::Buffer, WeightsDtype::F32) => Reader::F32,
            (WeightsBinding::Buffer, WeightsDtype::F16) => Reader::F16,
            (WeightsBinding::Buffer, WeightsDtype::I8) => {
                unreachable!("int8 weights are refused at upload")
            }
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

    /// Each reader defines `load_w`, and the texture reader's row width is the host's.
    #[test]
    fn readers_agree_with_the_host() {
        for source in [
            wgsl!("weights/f32.wgsl"),
            wgsl!("weights/f16.wgsl"),
            wgsl!("weights/texture.wgsl"),
        ] {
            let shader = Shader::parse("weights", source);
            shader.function("load_w");
        }
        let texture = Shader::parse("weights/texture.wgsl", wgsl!("weights/texture.wgsl"));
        assert_eq!(texture.constant("TEXTURE_WIDTH"), f64::from(TEXTURE_WIDTH));
    }
}
