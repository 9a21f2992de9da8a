// The cell of a step, shared by every step kernel of `step.wgsl`: the activation functions
// (ONNX's, clipped), where each row's h_{t−1} is and which time step it processes, the
// recurrent product, the two-pass GRU's first pass, and the activations and state update of
// one column (the equations are in `step.wgsl`'s header). Appended to `step.wgsl` with the
// product of `plain.wgsl` or `subgroup.wgsl`.

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
    scale_sums(j4, d, s, &acc);
    if (CT == 2u && j4 + 1u < p.n4) {
        scale_sums(j4 + 1u, d, s, &acc2);
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

// The sums of column j4 for the BT rows of a tile as the update takes them: scaled by the
// column's scales for int8 weights (direction d's step-0 or recurrent ones, by step s),
// unchanged for float weights.
fn scale_sums(j4: u32, d: u32, s: u32, acc: ptr<function, array<vec4<f32>, MAX_BT>>) {
    let sc = w_scale(select(p.srec_offset, p.s0_offset, s == 0u) + 4u * (d * p.n4 + j4));
    for (var r = 0u; r < BT; r = r + 1u) {
        (*acc)[r] = w_scaled((*acc)[r], sc);
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
    scale_sums(j4, d, s, &acc);
    if (CT == 2u && j4 + 1u < p.n4) {
        scale_sums(j4 + 1u, d, s, &acc2);
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
// h_{t−1} at `prev`), whose recurrent product is `a` (scaled: `scale_sums`).
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
            ph = load_f32x4(p.ph_offset, d * hid + j4);
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
