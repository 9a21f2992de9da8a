// Subgroup kernels of the step family, appended to `step.wgsl` on devices with subgroup
// operations and subgroups of at least 8 invocations (`Variant::StepwiseWideSubgroup`).
//
// The recurrent product of `product`, the same sums in the same order (so the same bits), with
// h_{t−1} loaded once per 8 hidden units and row instead of once per unit: every invocation
// of a workgroup reads the same rows, so invocation `lane` of each subgroup loads unit
// k0 + lane mod 8 and `subgroupShuffle` hands each of the 8 values to the whole subgroup.
// On software adapters a storage-buffer load is a loop over the vector's lanes and a shuffle
// a few register moves; on GPUs the shuffle replaces a load from cache. (Eight constant-lane
// `subgroupBroadcast`s, unrolled, measured slower here: 424 against 287 ms on `batch`.) Every
// invocation of the workgroup runs `step` (a broadcast needs its whole subgroup); those past
// the last column store nothing.

// Subgroup invocation index of this invocation, set by the entry points below.
var<private> lane: u32;

// Whether `recurrent` is the subgroup product: set for `main_sg` and `reset_sg` only (the
// other entry points of a module with these kernels keep `product`).
override SUBGROUP_PRODUCT: bool = false;

// Stepwise, two columns per invocation (CT = 2) with the subgroup product.
@compute @workgroup_size(WG, 1, 1)
fn main_sg(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(subgroup_invocation_id) sg_lane: u32) {
    lane = sg_lane;
    // gid.y is the workgroup's: the whole workgroup takes the same branch.
    if (gid.y * BT < p.batch) {
        step(gid.x * CT, gid.y * BT, gid.z, p.step);
    }
}

// The first pass of a two-pass GRU step for `main_sg`.
@compute @workgroup_size(WG, 1, 1)
fn reset_sg(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(subgroup_invocation_id) sg_lane: u32) {
    lane = sg_lane;
    if (gid.y * BT < p.batch) {
        reset_gate(gid.x * CT, gid.y * BT, gid.z, p.step);
    }
}

fn recurrent(j4: u32, d: u32, s: u32, src: u32, base: ptr<function, array<u32, MAX_BT>>,
             acc: ptr<function, array<vec4<f32>, MAX_BT>>,
             acc2: ptr<function, array<vec4<f32>, MAX_BT>>) {
    if (SUBGROUP_PRODUCT) {
        product_sg(j4, d, s, src, base, acc, acc2);
    } else {
        product(j4, d, s, src, base, acc, acc2);
    }
}

// Element i of h0 (src 0), m (src 1) or c (src 2).
fn state_value(src: u32, i: u32) -> f32 {
    if (src == 0u) {
        return h0[i];
    } else if (src == 1u) {
        return m[i];
    }
    return c[i];
}

// acc[r] += x[r] · w(k, j4) (and acc2 for the second column) for one k at weight index wi;
// returns the next k's index.
fn product_k(wi: u32, next: u32, x: ptr<function, array<f32, MAX_BT>>,
             acc: ptr<function, array<vec4<f32>, MAX_BT>>,
             acc2: ptr<function, array<vec4<f32>, MAX_BT>>) -> u32 {
    let wv = load_w(wi);
    let wv2 = second_column(wi + next);
    for (var r = 0u; r < BT; r = r + 1u) {
        (*acc)[r] = (*acc)[r] + (*x)[r] * wv;
        if (CT == 2u) {
            (*acc2)[r] = (*acc2)[r] + (*x)[r] * wv2;
        }
    }
    return wi + p.n4;
}

// What `product` computes, h_{t−1} shared through subgroup shuffles.
fn product_sg(j4: u32, d: u32, s: u32, src: u32, base: ptr<function, array<u32, MAX_BT>>,
              acc: ptr<function, array<vec4<f32>, MAX_BT>>,
              acc2: ptr<function, array<vec4<f32>, MAX_BT>>) {
    let start = product_start(j4, d, s, acc, acc2);
    var wi = start.x;
    let kn = start.y;
    let next = select(0u, 1u, j4 + 1u < p.n4);
    let kb = kn / 8u * 8u;
    let mine = lane & 7u;
    var v: array<f32, MAX_BT>;
    var x: array<f32, MAX_BT>;
    for (var k0 = 0u; k0 < kb; k0 = k0 + 8u) {
        for (var r = 0u; r < BT; r = r + 1u) {
            v[r] = state_value(src, (*base)[r] + k0 + mine);
        }
        for (var j = 0u; j < 8u; j = j + 1u) {
            for (var r = 0u; r < BT; r = r + 1u) {
                x[r] = subgroupShuffle(v[r], j);
            }
            wi = product_k(wi, next, &x, acc, acc2);
        }
    }
    for (var k = kb; k < kn; k = k + 1u) {
        for (var r = 0u; r < BT; r = r + 1u) {
            x[r] = state_value(src, (*base)[r] + k);
        }
        wi = product_k(wi, next, &x, acc, acc2);
    }
}
