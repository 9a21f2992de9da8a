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

// ONNX's activation functions, finite for every finite x (codes: `Activation::code`).
fn act(code: u32, alpha: f32, beta: f32, x: f32) -> f32 {
    switch code {
        case 0u: { return sigmoid(x); }
        case 1u: { return tanh_safe(x); }
        case 2u: { return max(x, 0.0); }
        case 3u: { return clamp(alpha * x + beta, 0.0, 1.0); }
        case 4u: { return select(alpha * x, x, x >= 0.0); }
        case 5u: { return select(0.0, x, x > alpha); }
        case 6u: { return alpha * tanh_safe(beta * x); }
        case 7u: { return alpha * x + beta; }
        case 8u: { return select(alpha * (exp(min(x, 0.0)) - 1.0), x, x >= 0.0); }
        case 9u: { return x / (1.0 + abs(x)); }
        default: { return max(x, 0.0) + log(1.0 + exp(-abs(x))); }
    }
}

// A gate pre-activation, clipped.
fn pre(x: f32) -> f32 {
    if (CLIP > 0.0) {
        return clamp(x, -CLIP, CLIP);
    }
    return x;
}

// The gates' function f, the candidate's g (both on clipped arguments) and the output's h, of
// direction d.
fn act_f(d: u32, x: f32) -> f32 {
    if (d == 0u) {
        return act(ACT_F0, A_F0, B_F0, pre(x));
    }
    return act(ACT_F1, A_F1, B_F1, pre(x));
}

fn act_g(d: u32, x: f32) -> f32 {
    if (d == 0u) {
        return act(ACT_G0, A_G0, B_G0, pre(x));
    }
    return act(ACT_G1, A_G1, B_G1, pre(x));
}

fn act_h(d: u32, x: f32) -> f32 {
    if (d == 0u) {
        return act(ACT_H0, A_H0, B_H0, x);
    }
    return act(ACT_H1, A_H1, B_H1, x);
}

// Whether the GRU's steps run in two passes (reset gate before the linear part).
fn two_pass() -> bool {
    return CELL == 1u && !RESET_AFTER;
}

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

// acc[r] = Σ_k v[base[r] + k] · w[d][k][j4] as `product` computes it, with invocation `lane`
// of the workgroup summing every WG-th k and the partial sums reduced in workgroup memory;
// the result is complete in invocation 0.
fn split_sum(lane: u32, j4: u32, d: u32, s: u32, src: u32,
             base: ptr<function, array<u32, MAX_BT>>,
             acc: ptr<function, array<vec4<f32>, MAX_BT>>) {
    for (var r = 0u; r < BT; r = r + 1u) {
        (*acc)[r] = vec4<f32>(0.0);
    }
    var w0: u32;
    var kn: u32;
    if (s == 0u) {
        w0 = p.w0_offset + d * p.k0 * p.n4 + j4;
        kn = p.k0;
    } else {
        w0 = p.wrec_offset + d * p.hidden * p.n4 + j4;
        kn = p.hidden;
    }
    for (var k = lane; k < kn; k = k + WG) {
        let wv = load_w(w0 + k * p.n4);
        for (var r = 0u; r < BT; r = r + 1u) {
            let i = (*base)[r] + k;
            var v: f32;
            if (src == 0u) {
                v = h0[i];
            } else if (src == 1u) {
                v = m[i];
            } else {
                v = c[i];
            }
            (*acc)[r] = (*acc)[r] + v * wv;
        }
    }
    for (var r = 0u; r < BT; r = r + 1u) {
        partial[lane * MAX_BT + r] = (*acc)[r];
    }
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lane < stride) {
            for (var r = 0u; r < BT; r = r + 1u) {
                partial[lane * MAX_BT + r] = partial[lane * MAX_BT + r]
                    + partial[(lane + stride) * MAX_BT + r];
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < BT; r = r + 1u) {
        (*acc)[r] = partial[r];
    }
}

// Per row r of the tile at b0: the time step it processes at step s (`t_of`) and where its
// h_{t−1} starts (`prev`: in h0 at step 0, else in m).
fn locate(b0: u32, d: u32, s: u32, t_of: ptr<function, array<u32, MAX_BT>>,
          prev: ptr<function, array<u32, MAX_BT>>) {
    let nb = p.batch;
    let reverse = ((REVERSED >> d) & 1u) == 1u;
    let dh = p.dirs * p.hidden;
    for (var r = 0u; r < BT; r = r + 1u) {
        let b = min(b0 + r, nb - 1u);
        let len = lens[b];
        let live = s < len;
        let t = select(s, len - 1u - s, reverse && live);
        (*t_of)[r] = t;
        if (s == 0u) {
            (*prev)[r] = p.h0_offset + (d * nb + b) * p.k0;
        } else if (live) {
            let tp = select(t - 1u, t + 1u, reverse);
            (*prev)[r] = (tp * nb + b) * dh + d * p.hidden;
        } else {
            (*prev)[r] = 0u;
        }
    }
}

// The weights of the second column at `i` where an invocation has two (CT = 2); nothing
// is loaded with one (CT is a constant of the pipeline, so the branch folds away).
fn second_column(i: u32) -> vec4<f32> {
    if (CT == 2u) {
        return load_w(i);
    }
    return vec4<f32>(0.0);
}

// Zeroes the sums of a product of column j4 and returns where it starts: the weight index of
// k = 0 and the number of k (the step-0 weights at s = 0, the recurrent ones after).
fn product_start(j4: u32, d: u32, s: u32, acc: ptr<function, array<vec4<f32>, MAX_BT>>,
                 acc2: ptr<function, array<vec4<f32>, MAX_BT>>) -> vec2<u32> {
    for (var r = 0u; r < BT; r = r + 1u) {
        (*acc)[r] = vec4<f32>(0.0);
        (*acc2)[r] = vec4<f32>(0.0);
    }
    if (s == 0u) {
        return vec2<u32>(p.w0_offset + d * p.k0 * p.n4 + j4, p.k0);
    }
    return vec2<u32>(p.wrec_offset + d * p.hidden * p.n4 + j4, p.hidden);
}

// The recurrent product of a step, `recurrent`, is `product` below, or in the subgroup kernels
// (`subgroup.wgsl`) its subgroup form; `plain.wgsl` or that file defines it.
//
// acc[r] = Σ_k v[base[r] + k] · w[d][k][j4] (and, with CT = 2, acc2[r] the same for column
// j4 + 1, clamped to the last column) with the step-0 weights at s = 0 and the recurrent ones
// after, where v is h0 (src 0), m (src 1) or c (src 2, a two-pass GRU's r ⊙ h).
fn product(j4: u32, d: u32, s: u32, src: u32, base: ptr<function, array<u32, MAX_BT>>,
           acc: ptr<function, array<vec4<f32>, MAX_BT>>,
           acc2: ptr<function, array<vec4<f32>, MAX_BT>>) {
    let start = product_start(j4, d, s, acc, acc2);
    var wi = start.x;
    let kn = start.y;
    // Offset of the second column (0 when j4 is the last one). The three loops differ only in
    // the buffer they read: WGSL cannot pass a storage buffer to a function.
    let next = select(0u, 1u, j4 + 1u < p.n4);
    if (src == 0u) {
        for (var k = 0u; k < kn; k = k + 1u) {
            let wv = load_w(wi);
            let wv2 = second_column(wi + next);
            for (var r = 0u; r < BT; r = r + 1u) {
                let v = h0[(*base)[r] + k];
                (*acc)[r] = (*acc)[r] + v * wv;
                if (CT == 2u) {
                    (*acc2)[r] = (*acc2)[r] + v * wv2;
                }
            }
            wi = wi + p.n4;
        }
    } else if (src == 1u) {
        for (var k = 0u; k < kn; k = k + 1u) {
            let wv = load_w(wi);
            let wv2 = second_column(wi + next);
            for (var r = 0u; r < BT; r = r + 1u) {
                let v = m[(*base)[r] + k];
                (*acc)[r] = (*acc)[r] + v * wv;
                if (CT == 2u) {
                    (*acc2)[r] = (*acc2)[r] + v * wv2;
                }
            }
            wi = wi + p.n4;
        }
    } else {
        for (var k = 0u; k < kn; k = k + 1u) {
            let wv = load_w(wi);
            let wv2 = second_column(wi + next);
            for (var r = 0u; r < BT; r = r + 1u) {
                let v = c[(*base)[r] + k];
                (*acc)[r] = (*acc)[r] + v * wv;
                if (CT == 2u) {
                    (*acc2)[r] = (*acc2)[r] + v * wv2;
                }
            }
            wi = wi + p.n4;
        }
    }
}

// h_{t−1} of hidden unit u for the row whose h_{t−1} starts at `prev`.
fn h_prev_of(s: u32, prev: u32, u: u32) -> f32 {
    if (s == 0u) {
        return h0[prev + u];
    }
    return m[prev + u];
}

// First pass of a two-pass GRU step: r ⊙ h_{t−1} into c and z into mn, for units j4 and
// (CT = 2) j4 + 1.
fn reset_gate(j4: u32, b0: u32, d: u32, s: u32) {
    let nb = p.batch;
    var t_of: array<u32, MAX_BT>;
    var prev: array<u32, MAX_BT>;
    locate(b0, d, s, &t_of, &prev);
    var acc: array<vec4<f32>, MAX_BT>;
    var acc2: array<vec4<f32>, MAX_BT>;
    recurrent(min(j4, p.n4 - 1u), d, s, select(1u, 0u, s == 0u), &prev, &acc, &acc2);
    if (j4 >= p.n4) {
        return;
    }
    for (var r = 0u; r < BT; r = r + 1u) {
        let b = b0 + r;
        if (b >= nb) {
            break;
        }
        if (s >= lens[b]) {
            continue;
        }
        reset_unit(j4, acc[r], b, t_of[r], prev[r], d, s);
        if (CT == 2u && j4 + 1u < p.n4) {
            reset_unit(j4 + 1u, acc2[r], b, t_of[r], prev[r], d, s);
        }
    }
}

// The first pass for unit j of row b, whose recurrent product is `a`.
fn reset_unit(j: u32, a: vec4<f32>, b: u32, t: u32, prev: u32, d: u32, s: u32) {
    let nb = p.batch;
    let g = gx[((d * p.steps + t) * nb + b) * p.n4 + j];
    let st = p.state_offset + (d * nb + b) * p.hidden;
    c[st + j] = act_f(d, g.x + a.x) * h_prev_of(s, prev, j);
    mn[st + j] = act_f(d, g.y + a.y);
}

// Step s of columns j4 (and, with CT = 2, j4 + 1), batch rows b0 … b0 + BT − 1 (those <
// batch), direction d. An invocation past the last column (the subgroup kernels run every
// invocation of a subgroup through the product) computes the last column's product and
// stores nothing.
fn step(j4: u32, b0: u32, d: u32, s: u32) {
    let nb = p.batch;
    var t_of: array<u32, MAX_BT>;
    var prev: array<u32, MAX_BT>;
    locate(b0, d, s, &t_of, &prev);
    var acc: array<vec4<f32>, MAX_BT>;
    var acc2: array<vec4<f32>, MAX_BT>;
    let jp = min(j4, p.n4 - 1u);
    if (two_pass()) {
        // The product with r ⊙ h_{t−1}, which the first pass left in c.
        var rh: array<u32, MAX_BT>;
        for (var r = 0u; r < BT; r = r + 1u) {
            rh[r] = p.state_offset + (d * nb + min(b0 + r, nb - 1u)) * p.hidden;
        }
        recurrent(jp, d, 1u, 2u, &rh, &acc, &acc2);
    } else {
        recurrent(jp, d, s, select(1u, 0u, s == 0u), &prev, &acc, &acc2);
    }
    if (j4 >= p.n4) {
        return;
    }
    for (var r = 0u; r < BT; r = r + 1u) {
        let b = b0 + r;
        if (b >= nb) {
            break;
        }
        update(j4, acc[r], b, t_of[r], prev[r], d, s);
        if (CT == 2u && j4 + 1u < p.n4) {
            update(j4 + 1u, acc2[r], b, t_of[r], prev[r], d, s);
        }
    }
}

// The activations and the state update of column j4 for row b (processing time step t, its
// h_{t−1} at `prev`), whose recurrent product is `a`.
fn update(j4: u32, a: vec4<f32>, b: u32, t: u32, prev: u32, d: u32, s: u32) {
    let hid = p.hidden;
    let nb = p.batch;
    let out = (t * nb + b) * p.dirs * hid + d * hid;
    let st = p.state_offset + (d * nb + b) * hid;
    if (s >= lens[b]) {
        // Past the end of this sequence: zero output at t = s, state kept.
        if (CELL >= 2u) {
            for (var lane = 0u; lane < 4u; lane = lane + 1u) {
                if (4u * j4 + lane < hid) {
                    m[out + 4u * j4 + lane] = 0.0;
                }
            }
        } else {
            m[out + j4] = 0.0;
        }
        return;
    }
    let g = gx[((d * p.steps + t) * nb + b) * p.n4 + j4];
    if (CELL == 0u) {
        var ph = vec4<f32>(0.0);
        if (PEEPHOLE) {
            ph = load_w(p.ph_offset + d * hid + j4);
        }
        let z = g + a;
        let c_prev = c[st + j4];
        let i_g = act_f(d, z.x + ph.x * c_prev);
        var f_g: f32;
        if (INPUT_FORGET) {
            f_g = 1.0 - i_g;
        } else {
            f_g = act_f(d, z.y + ph.y * c_prev);
        }
        let c_new = f_g * c_prev + i_g * act_g(d, z.z);
        let o_g = act_f(d, z.w + ph.z * c_new);
        let h_new = o_g * act_h(d, c_new);
        c[st + j4] = c_new;
        mn[st + j4] = h_new;
        m[out + j4] = h_new;
    } else if (CELL == 1u) {
        let h_prev = h_prev_of(s, prev, j4);
        var z_g: f32;
        var n_g: f32;
        if (two_pass()) {
            z_g = mn[st + j4];
            n_g = act_g(d, g.z + a.z + g.w);
        } else {
            let r_g = act_f(d, g.x + a.x);
            z_g = act_f(d, g.y + a.y);
            n_g = act_g(d, g.z + r_g * (a.z + g.w));
        }
        let h_new = (1.0 - z_g) * n_g + z_g * h_prev;
        mn[st + j4] = h_new;
        m[out + j4] = h_new;
    } else {
        let v = g + a;
        let h_new = vec4<f32>(act_f(d, v.x), act_f(d, v.y), act_f(d, v.z), act_f(d, v.w));
        for (var lane = 0u; lane < 4u; lane = lane + 1u) {
            let u = 4u * j4 + lane;
            if (u < hid) {
                mn[st + u] = h_new[lane];
                m[out + u] = h_new[lane];
            }
        }
    }
}
