// Weights in a 2D texture (`rgba32float`, or `rgba16float` for `--weights-dtype f16`): binding 2
// of the GEMM and step kernels. Packed vec4 `i` is texel (i mod 4096, i / 4096): the buffer
// layout wrapped into rows of 4096 texels (`TEXTURE_WIDTH` in src/gpu/weights.rs). Reads go
// through the texture path, cheaper than a storage buffer's on some adapters (chosen by
// measurement; the values are the same bits). Prepended to `gemm.wgsl` and `step.wgsl`.

@group(0) @binding(2) var w: texture_2d<f32>;

fn load_w(i: u32) -> vec4<f32> {
    return textureLoad(w, vec2<u32>(i & 4095u, i >> 12u), 0);
}
