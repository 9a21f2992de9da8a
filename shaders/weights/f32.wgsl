// Weights as float32: binding 2 of the GEMM and step kernels, one vec4 per packed column
// element. Prepended to the families' WGSL, which read weights only through `load_w`.

@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;

fn load_w(i: u32) -> vec4<f32> {
    return w[i];
}
