// One fused recurrent time step, for every direction of a layer and every cell: LSTM (with
// optional peepholes; with a projection the step produces m_t = o ⊙ tanh(c_t)), GRU, and
// vanilla RNN. The cell and ONNX's options of its gates (activation functions per direction,
// clip, input_forget, where a GRU applies its reset gate, which directions run backwards) are
// `override` constants, so each pipeline holds only its own model's code; their defaults are
// PyTorch's equations.
//
// Invocation (column j4, batch tile, direction d) owns one vec4 column of the packed weights
// (two neighbouring columns with CT = 2, which loads each h value once for both) for BT batch
// rows: for LSTM and GRU that column holds the gates of hidden unit j4 (i, f, g, o
// or r, z, n, –), for RNN it holds four hidden units 4·j4 … 4·j4+3. It computes the recurrent
// product of that column, adds the hoisted input projection, applies the activations and the
// state update, and writes the result straight into the layer's step-output sequence `m`,
// which the next step reads back as h_{t−1}.
//
//   acc = Σ_k h_{t−1}[b][k] · w[d][k][j4]          (step 0: h0 with the step-0 weights)
//   LSTM  a = gx + acc; i = f(a.x + p_i c), f = f(a.y + p_f c) (1 − i with INPUT_FORGET),
//         g = g(a.z), c' = f c + i g, o = f(a.w + p_o c'), m = o h(c')
//   GRU   r = f(gx.x + acc.x), z = f(gx.y + acc.y), n = g(gx.z + r (acc.z + gx.w)),
//         h' = (1 − z) n + z h                     (gx.w carries b_hn)
//   RNN   h' = f(gx + acc), four units per invocation
//
// (PyTorch: f = σ, g = h = tanh; RNN f = tanh or relu.) Every argument of f and g is clamped
// to [−CLIP, CLIP] when CLIP > 0. A GRU whose reset gate applies before its linear part
// (RESET_AFTER = false: n = g(gx.z + W_n (r ⊙ h) + gx.w)) runs each step in two passes: `reset`
// (stepwise) or the first half of `sequence` writes r ⊙ h_{t−1} into `c` (unused by a GRU
// otherwise) and z into `mn`, then the step's product runs over r ⊙ h_{t−1}.
//
// Sequence b is lens[b] steps long: at step s < lens[b] a forward direction processes t = s
// and a reverse one t = lens[b] − 1 − s; at s ≥ lens[b] both write zeros at t = s and keep
// their state. Both the cell state `c` and the final-state buffer `mn` are updated in place by
// the one invocation that owns each element.
//
// This file holds the parameters, the bindings and the entry points; the cell they run (the
// activations, the product, the update) is `cell.wgsl`, appended to it with `plain.wgsl` or
// `subgroup.wgsl`.

struct StepParams {
    batch: u32,
    steps: u32,
    step: u32,
    dirs: u32,
    hidden: u32,       // H: hidden units (cell-state size)
    n4: u32,           // vec4 columns of the packed weights per direction
    k0: u32,           // features of h0 (H, or P with a projection)
    w0_offset: u32,    // vec4 index of the step-0 weights [D, k0, n4]
    wrec_offset: u32,  // vec4 index of the recurrent weights [D, H, n4] (steps ≥ 1)
    ph_offset: u32,    // vec4 index of the peepholes [D, H] (p_i, p_f, p_o, 0)
    h0_offset: u32,    // f32 index of this layer's h0 block [D, B, k0]
    state_offset: u32, // f32 index of this layer's c / mn block [D, B, H]
    s0_offset: u32,    // int8 weights: u32 index of the step-0 weights' scales [D, n4] (quads)
    srec_offset: u32,  // int8 weights: u32 index of the recurrent weights' scales [D, n4]
}

override WG: u32 = 64u;          // invocations along columns
override BT: u32 = 4u;           // batch rows per invocation, 1..=MAX_BT
override CELL: u32 = 0u;         // 0 LSTM, 1 GRU, 2 RNN tanh, 3 RNN relu
override CT: u32 = 1u;           // vec4 columns per invocation: 1, or 2 (neighbours)
override PEEPHOLE: bool = false; // LSTM peepholes
const MAX_BT: u32 = 8u;

// ONNX's options; the defaults are PyTorch's equations.
override REVERSED: u32 = 2u;        // bit d set: direction d walks from each sequence's end
override CLIP: f32 = 0.0;           // > 0: bound of every gate pre-activation
override INPUT_FORGET: bool = false; // LSTM f = 1 − i
override RESET_AFTER: bool = true;  // GRU: r ⊙ (W_n h + b_n) (PyTorch) or W_n (r ⊙ h) + b_n
// Activation functions f, g, h of directions 0 and 1 (codes as `act` below) and their
// parameters alpha (A_*) and beta (B_*).
override ACT_F0: u32 = 0u;
override ACT_G0: u32 = 1u;
override ACT_H0: u32 = 1u;
override ACT_F1: u32 = 0u;
override ACT_G1: u32 = 1u;
override ACT_H1: u32 = 1u;
override A_F0: f32 = 0.0;
override B_F0: f32 = 0.0;
override A_G0: f32 = 0.0;
override B_G0: f32 = 0.0;
override A_H0: f32 = 0.0;
override B_H0: f32 = 0.0;
override A_F1: f32 = 0.0;
override B_F1: f32 = 0.0;
override A_G1: f32 = 0.0;
override B_G1: f32 = 0.0;
override A_H1: f32 = 0.0;
override B_H1: f32 = 0.0;

@group(0) @binding(0) var<uniform> p: StepParams;
@group(0) @binding(1) var<storage, read> gx: array<vec4<f32>>;   // [D, T, B, n4]
// binding 2, `w` (step-0 | recurrent | peephole weights): see shaders/weights/
@group(0) @binding(3) var<storage, read> h0: array<f32>;         // [L·D, B, k0]
@group(0) @binding(4) var<storage, read_write> m: array<f32>;    // [T, B, D·H]
@group(0) @binding(5) var<storage, read_write> c: array<f32>;    // [L·D, B, H]
@group(0) @binding(6) var<storage, read_write> mn: array<f32>;   // [L·D, B, H]
@group(0) @binding(7) var<storage, read> lens: array<u32>;       // [B]

// Stepwise variant: one dispatch per time step, one invocation per (CT columns, batch tile,
// direction).
@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x * CT < p.n4 && gid.y * BT < p.batch) {
        step(gid.x * CT, gid.y * BT, gid.z, p.step);
    }
}

// The first pass of a two-pass GRU step (stepwise), dispatched before `main` for each step.
@compute @workgroup_size(WG, 1, 1)
fn reset(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x * CT < p.n4 && gid.y * BT < p.batch) {
        reset_gate(gid.x * CT, gid.y * BT, gid.z, p.step);
    }
}

// Whole-sequence variant: one dispatch per layer. Workgroup (batch tile, direction) walks
// every time step; its invocations share the columns, and a storage barrier between steps
// makes each step's h_t visible to the whole workgroup before the next step reads it. This
// removes the per-dispatch cost that dominates small batches.
@compute @workgroup_size(WG, 1, 1)
fn sequence(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let b0 = wid.y * BT;
    for (var s = 0u; s < p.steps; s = s + 1u) {
        if (two_pass()) {
            for (var j4 = lid.x * CT; j4 < p.n4; j4 = j4 + WG * CT) {
                reset_gate(j4, b0, wid.z, s);
            }
            storageBarrier();
        }
        for (var j4 = lid.x * CT; j4 < p.n4; j4 = j4 + WG * CT) {
            step(j4, b0, wid.z, s);
        }
        storageBarrier();
    }
}

// Split-K variant (stepwise): one workgroup of WG invocations per (column, batch tile,
// direction); the invocations share the sum over k (each takes every WG-th k), reduce their
// partial sums in workgroup memory, and the first applies the update. Many more invocations
// per step than `main` — for small batches on GPUs with many cores. The sums' order differs
// from the other variants (results equal within float32 rounding).
var<workgroup> partial: array<vec4<f32>, 512>;  // [WG = 64][MAX_BT]

@compute @workgroup_size(WG, 1, 1)
fn split(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let j4 = wid.x;
    let b0 = wid.y * BT;
    let d = wid.z;
    let s = p.step;
    let nb = p.batch;
    var t_of: array<u32, MAX_BT>;
    var prev: array<u32, MAX_BT>;
    locate(b0, d, s, &t_of, &prev);
    var acc: array<vec4<f32>, MAX_BT>;
    if (two_pass()) {
        var rh: array<u32, MAX_BT>;
        for (var r = 0u; r < BT; r = r + 1u) {
            rh[r] = p.state_offset + (d * nb + min(b0 + r, nb - 1u)) * p.hidden;
        }
        split_sum(lid.x, j4, d, 1u, 2u, &rh, &acc);
    } else {
        split_sum(lid.x, j4, d, s, select(1u, 0u, s == 0u), &prev, &acc);
    }
    if (lid.x == 0u) {
        scale_sums(j4, d, s, &acc);
        for (var r = 0u; r < BT; r = r + 1u) {
            let b = b0 + r;
            if (b >= nb) {
                break;
            }
            update(j4, acc[r], b, t_of[r], prev[r], d, s);
        }
    }
}

// The first pass of a two-pass GRU step for the split-K variant.
@compute @workgroup_size(WG, 1, 1)
fn split_reset(@builtin(local_invocation_id) lid: vec3<u32>,
               @builtin(workgroup_id) wid: vec3<u32>) {
    let j4 = wid.x;
    let b0 = wid.y * BT;
    let d = wid.z;
    let s = p.step;
    var t_of: array<u32, MAX_BT>;
    var prev: array<u32, MAX_BT>;
    locate(b0, d, s, &t_of, &prev);
    var acc: array<vec4<f32>, MAX_BT>;
    split_sum(lid.x, j4, d, s, select(1u, 0u, s == 0u), &prev, &acc);
    if (lid.x == 0u) {
        scale_sums(j4, d, s, &acc);
        for (var r = 0u; r < BT; r = r + 1u) {
            let b = b0 + r;
            if (b >= p.batch) {
                break;
            }
            if (s < lens[b]) {
                reset_unit(j4, acc[r], b, t_of[r], prev[r], d, s);
            }
        }
    }
}
