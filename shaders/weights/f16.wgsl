// Weights as float16 (`--weights-dtype f16`): binding 2 of the GEMM and step kernels holds each
// packed vec4 as two u32, each a pair of halves, unpacked to float32 at the load
// (`unpack2x16float` needs no optional feature). Sums and states stay float32. Prepended to the
// families' WGSL (`shaders/gemm/`, `shaders/step/`), which read weights only through `load_w`.

@group(0) @binding(2) var<storage, read> w: array<vec2<u32>>;

fn load_w(i: u32) -> vec4<f32> {
    let v = w[i];
    return vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y));
}
