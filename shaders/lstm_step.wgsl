// One fused LSTM time step for every direction of a layer.
//
// Invocation (j, batch tile, d) owns hidden unit j of direction d for BT batch rows. It
// computes the recurrent product of all four gates at once — the gates of unit j were packed
// together at upload, so one vec4 load of w_hh brings i, f, g, o — adds the hoisted input
// projection, applies the activations and the c/h update, and writes h_t straight into the
// layer's output sequence, which the next step reads as h_{t−1}.
//
//   a   = gx[d][t][b][j] + Σ_k h_{t−1}[b][k] · whh[d][k][j]     (vec4: i, f, g, o)
//   c_t = σ(a.y) · c_{t−1} + σ(a.x) · tanh(a.z)
//   h_t = σ(a.w) · tanh(c_t)
//
// The forward direction (d = 0) processes t = step, the reverse (d = 1) t = T − 1 − step.
// The cell state lives in `c` (the c_n output) and is updated in place: only this invocation
// reads or writes its element.

struct StepParams {
    batch: u32,
    hidden: u32,
    steps: u32,
    step: u32,
    dirs: u32,
    state_offset: u32, // first element of this layer's [D, B, H] block in h0 / c / hn
    _pad0: u32,
    _pad1: u32,
}

override WG: u32 = 64u; // invocations along hidden units
override BT: u32 = 4u;  // batch rows per invocation, 1..=MAX_BT
const MAX_BT: u32 = 4u;

@group(0) @binding(0) var<uniform> p: StepParams;
@group(0) @binding(1) var<storage, read> gx: array<vec4<f32>>;        // [D, T, B, H]
@group(0) @binding(2) var<storage, read> whh: array<vec4<f32>>;       // [D, H, H]
@group(0) @binding(3) var<storage, read> h0: array<f32>;              // [L·D, B, H]
@group(0) @binding(4) var<storage, read_write> y: array<f32>;         // [T, B, D·H]
@group(0) @binding(5) var<storage, read_write> c: array<f32>;         // [L·D, B, H]
@group(0) @binding(6) var<storage, read_write> hn: array<f32>;        // [L·D, B, H]

// σ(x) from e^{−|x|} ≤ 1: never overflows, never NaN for finite x.
fn sigmoid(x: f32) -> f32 {
    let e = exp(-abs(x));
    let s = 1.0 / (1.0 + e);
    return select(e * s, s, x >= 0.0);
}

// tanh(x) from e^{−2|x|} ≤ 1: never overflows, never NaN for finite x (some drivers' builtin
// tanh returns NaN for large |x|).
fn tanh_safe(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    let t = (1.0 - e) / (1.0 + e);
    return select(-t, t, x >= 0.0);
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let hid = p.hidden;
    let nb = p.batch;
    let j = gid.x;
    let b0 = gid.y * BT;
    let d = gid.z;
    if (j >= hid || b0 >= nb) {
        return;
    }
    let reverse = d == 1u;
    let t = select(p.step, p.steps - 1u - p.step, reverse);
    let dh = p.dirs * hid;
    let last_b = nb - 1u;

    var acc: array<vec4<f32>, MAX_BT>;
    for (var r = 0u; r < BT; r = r + 1u) {
        let b = min(b0 + r, last_b);
        acc[r] = gx[((d * p.steps + t) * nb + b) * hid + j];
    }

    var wi = d * hid * hid + j;
    if (p.step == 0u) {
        // h_{−1} = h0 of this layer and direction.
        let base = p.state_offset + d * nb * hid;
        for (var k = 0u; k < hid; k = k + 1u) {
            let wv = whh[wi];
            for (var r = 0u; r < BT; r = r + 1u) {
                let b = min(b0 + r, last_b);
                acc[r] = acc[r] + h0[base + b * hid + k] * wv;
            }
            wi = wi + hid;
        }
    } else {
        // h_{t−1} is this direction's previous output in y.
        let tp = select(t - 1u, t + 1u, reverse);
        let base = tp * nb * dh + d * hid;
        for (var k = 0u; k < hid; k = k + 1u) {
            let wv = whh[wi];
            for (var r = 0u; r < BT; r = r + 1u) {
                let b = min(b0 + r, last_b);
                acc[r] = acc[r] + y[base + b * dh + k] * wv;
            }
            wi = wi + hid;
        }
    }

    for (var r = 0u; r < BT; r = r + 1u) {
        let b = b0 + r;
        if (b < nb) {
            let a = acc[r];
            let si = p.state_offset + (d * nb + b) * hid + j;
            let c_new = sigmoid(a.y) * c[si] + sigmoid(a.x) * tanh_safe(a.z);
            let h_new = sigmoid(a.w) * tanh_safe(c_new);
            c[si] = c_new;
            hn[si] = h_new;
            y[(t * nb + b) * dh + d * hid + j] = h_new;
        }
    }
}
