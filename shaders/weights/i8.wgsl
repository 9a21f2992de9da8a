// Weights as int8 (`--weights-dtype i8`): binding 2 of the GEMM and step kernels holds each
// packed vec4 as one u32, four signed bytes (lane 0 in the low byte), unpacked with
// `unpack4xI8` at the load. A matrix's integers are followed, in the same buffer, by float32
// quads (their bits in u32s): the per-row scales of its vec4 columns, and in the step buffer
// the peepholes. A product sums `x · q` over the integers and scales the sum once:
// `bias + scale ⊙ Σ x q` (the scales of PyTorch rows, so of a column's four lanes). Sums,
// biases, peepholes and states stay float32; the activations are not quantized on the GPU.
// Prepended to the families' WGSL, which read weights only through the functions below.

@group(0) @binding(2) var<storage, read> w: array<u32>;

fn load_w(i: u32) -> vec4<f32> {
    return vec4<f32>(unpack4xI8(w[i]));
}

// The float32 quad at u32 index i.
fn quad(i: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>(vec4<u32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]));
}

// Float32 vec4 i of the quads that start at u32 index `base` (the peepholes).
fn load_f32x4(base: u32, i: u32) -> vec4<f32> {
    return quad(base + 4u * i);
}

// The scales of a vec4 column: the quad at u32 index `at`.
fn w_scale(at: u32) -> vec4<f32> {
    return quad(at);
}

// A product's sum before its first term: zero (the bias is added after the scale).
fn w_start(bias: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(0.0);
}

// A product's result from its sum over the integers: `bias + scale ⊙ sum`.
fn w_end(sum: vec4<f32>, bias: vec4<f32>, scale: vec4<f32>) -> vec4<f32> {
    return bias + scale * sum;
}

// A step's recurrent sum over the integers, scaled.
fn w_scaled(sum: vec4<f32>, scale: vec4<f32>) -> vec4<f32> {
    return scale * sum;
}
