// Weights in a 2D texture (`rgba32float`, or `rgba16float` for `--weights-dtype f16`): binding 2
// of the GEMM and step kernels. Packed vec4 `i` is texel (i mod TEXTURE_WIDTH, i / TEXTURE_WIDTH):
// the buffer layout wrapped into rows (`TEXTURE_WIDTH` in src/gpu/kernels/weights.rs, checked by
// its test). Reads go through the texture path, cheaper than a storage buffer's on some adapters
// (chosen by measurement; the values are the same bits). Prepended to the families' WGSL.

@group(0) @binding(2) var w: texture_2d<f32>;

const TEXTURE_WIDTH: u32 = 4096u;

fn load_w(i: u32) -> vec4<f32> {
    return textureLoad(w, vec2<u32>(i % TEXTURE_WIDTH, i / TEXTURE_WIDTH), 0);
}
