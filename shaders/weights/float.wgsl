// The rest of a float reader (`f32.wgsl`, `f16.wgsl`, `texture.wgsl`, each followed by this
// file): float weights need no scales, so a sum starts at the bias and ends as it is, and the
// peepholes are weights like the others. `i8.wgsl` defines the same functions for integers.

// Float32 vec4 i of the values that start at vec4 index `base` (the peepholes).
fn load_f32x4(base: u32, i: u32) -> vec4<f32> {
    return load_w(base + i);
}

// The scales of a vec4 column (int8 weights' only; nothing is read).
fn w_scale(at: u32) -> vec4<f32> {
    return vec4<f32>(1.0);
}

// A product's sum before its first term.
fn w_start(bias: vec4<f32>) -> vec4<f32> {
    return bias;
}

// A product's result from its sum (the bias is in it already).
fn w_end(sum: vec4<f32>, bias: vec4<f32>, scale: vec4<f32>) -> vec4<f32> {
    return sum;
}

// A step's recurrent sum, as the update uses it.
fn w_scaled(sum: vec4<f32>, scale: vec4<f32>) -> vec4<f32> {
    return sum;
}
