// One fused recurrent time step, for every direction of a layer and every cell: LSTM (with
// optional peepholes; with a projection the step produces m_t = o ⊙ tanh(c_t)), GRU, and
// vanilla RNN with tanh or relu. The cell is the `CELL` override, so each pipeline holds only
// its own cell's code.
//
// Invocation (column j4, batch tile, direction d) owns one vec4 column of the packed weights
// for BT batch rows: for LSTM and GRU that column holds the gates of hidden unit j4 (i, f, g, o
// or r, z, n, –), for RNN it holds four hidden units 4·j4 … 4·j4+3. It computes the recurrent
// product of that column, adds the hoisted input projection, applies the activations and the
// state update, and writes the result straight into the layer's step-output sequence `m`,
// which the next step reads back as h_{t−1}.
//
//   acc = Σ_k h_{t−1}[b][k] · w[d][k][j4]          (step 0: h0 with the step-0 weights)
//   LSTM  a = gx + acc; i = σ(a.x + p_i c), f = σ(a.y + p_f c), g = tanh(a.z),
//         c' = f c + i g, o = σ(a.w + p_o c'), m = o tanh(c')
//   GRU   r = σ(gx.x + acc.x), z = σ(gx.y + acc.y), n = tanh(gx.z + r (acc.z + gx.w)),
//         h' = (1 − z) n + z h                     (gx.w carries b_hn)
//   RNN   h' = tanh(gx + acc) or relu(gx + acc), four units per invocation
//
// Sequence b is lens[b] steps long: at step s < lens[b] the forward direction processes
// t = s and the reverse t = lens[b] − 1 − s; at s ≥ lens[b] both write zeros at t = s and
// keep their state. Both the cell state `c` and the final-state buffer `mn` are updated in
// place by the one invocation that owns each element.

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
override PEEPHOLE: bool = false; // LSTM peepholes
const MAX_BT: u32 = 4u;

@group(0) @binding(0) var<uniform> p: StepParams;
@group(0) @binding(1) var<storage, read> gx: array<vec4<f32>>;   // [D, T, B, n4]
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;    // step-0 | recurrent | peephole
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

fn rnn_act(x: vec4<f32>) -> vec4<f32> {
    if (CELL == 3u) {
        return max(x, vec4<f32>(0.0));
    }
    return vec4<f32>(tanh_safe(x.x), tanh_safe(x.y), tanh_safe(x.z), tanh_safe(x.w));
}

// Stepwise variant: one dispatch per time step, one invocation per (column, batch tile,
// direction).
@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < p.n4 && gid.y * BT < p.batch) {
        step(gid.x, gid.y * BT, gid.z, p.step);
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
        for (var j4 = lid.x; j4 < p.n4; j4 = j4 + WG) {
            step(j4, b0, wid.z, s);
        }
        storageBarrier();
    }
}

// Step s of column j4, batch rows b0 … b0 + BT − 1 (those < batch), direction d.
fn step(j4: u32, b0: u32, d: u32, s: u32) {
    let hid = p.hidden;
    let nb = p.batch;
    let reverse = d == 1u;
    let dh = p.dirs * hid;
    let last_b = nb - 1u;

    // Per row: is it active at this step, which t it processes, where its h_{t−1} starts.
    var t_of: array<u32, MAX_BT>;
    var prev: array<u32, MAX_BT>;
    for (var r = 0u; r < BT; r = r + 1u) {
        let b = min(b0 + r, last_b);
        let len = lens[b];
        let live = s < len;
        let t = select(s, len - 1u - s, reverse && live);
        t_of[r] = t;
        if (s == 0u) {
            prev[r] = p.h0_offset + (d * nb + b) * p.k0;
        } else if (live) {
            let tp = select(t - 1u, t + 1u, reverse);
            prev[r] = (tp * nb + b) * dh + d * hid;
        } else {
            prev[r] = 0u;
        }
    }

    var acc: array<vec4<f32>, MAX_BT>;
    for (var r = 0u; r < BT; r = r + 1u) {
        acc[r] = vec4<f32>(0.0);
    }
    if (s == 0u) {
        var wi = p.w0_offset + d * p.k0 * p.n4 + j4;
        for (var k = 0u; k < p.k0; k = k + 1u) {
            let wv = w[wi];
            for (var r = 0u; r < BT; r = r + 1u) {
                acc[r] = acc[r] + h0[prev[r] + k] * wv;
            }
            wi = wi + p.n4;
        }
    } else {
        var wi = p.wrec_offset + d * hid * p.n4 + j4;
        for (var k = 0u; k < hid; k = k + 1u) {
            let wv = w[wi];
            for (var r = 0u; r < BT; r = r + 1u) {
                acc[r] = acc[r] + m[prev[r] + k] * wv;
            }
            wi = wi + p.n4;
        }
    }

    for (var r = 0u; r < BT; r = r + 1u) {
        let b = b0 + r;
        if (b >= nb) {
            break;
        }
        let t = t_of[r];
        let out = (t * nb + b) * dh + d * hid;
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
            continue;
        }
        let g = gx[((d * p.steps + t) * nb + b) * p.n4 + j4];
        let a = acc[r];
        if (CELL == 0u) {
            var ph = vec4<f32>(0.0);
            if (PEEPHOLE) {
                ph = w[p.ph_offset + d * hid + j4];
            }
            let z = g + a;
            let c_prev = c[st + j4];
            let i_g = sigmoid(z.x + ph.x * c_prev);
            let f_g = sigmoid(z.y + ph.y * c_prev);
            let c_new = f_g * c_prev + i_g * tanh_safe(z.z);
            let o_g = sigmoid(z.w + ph.z * c_new);
            let h_new = o_g * tanh_safe(c_new);
            c[st + j4] = c_new;
            mn[st + j4] = h_new;
            m[out + j4] = h_new;
        } else if (CELL == 1u) {
            var h_prev: f32;
            if (s == 0u) {
                h_prev = h0[prev[r] + j4];
            } else {
                h_prev = m[prev[r] + j4];
            }
            let r_g = sigmoid(g.x + a.x);
            let z_g = sigmoid(g.y + a.y);
            let n_g = tanh_safe(g.z + r_g * (a.z + g.w));
            let h_new = (1.0 - z_g) * n_g + z_g * h_prev;
            mn[st + j4] = h_new;
            m[out + j4] = h_new;
        } else {
            let h_new = rnn_act(g + a);
            for (var lane = 0u; lane < 4u; lane = lane + 1u) {
                let u = 4u * j4 + lane;
                if (u < hid) {
                    mn[st + u] = h_new[lane];
                    m[out + u] = h_new[lane];
                }
            }
        }
    }
}
