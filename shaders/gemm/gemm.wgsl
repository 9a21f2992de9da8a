// Batched matrix product with bias: the input projection of every layer, the projection of an
// LSTM with `proj_size`, and the plain GEMM that measures an adapter.
//
//   out[out_offset + z·out_batch + m·out_stride + c] = bias[z][c] + Σ_k a[a_offset + z·a_batch + m·a_stride + k] · w[z][k][c]
//
// (int8 weights: bias[z][c] + scale[z][c] · Σ_k a[…] · q[z][k][c], see shaders/weights/i8.wgsl)
//
// for columns c < n_valid. `w` is stored K-major in vec4 columns ([K, N/4] of vec4), so the
// gates of one hidden unit — packed together at upload — are one vec4 and neighbouring
// invocations read neighbouring memory. z is the direction.
//
// Each invocation computes TM rows × one vec4 column in registers (register blocking, no
// barriers: barriers are expensive on software adapters and not needed at this size).

struct GemmParams {
    m: u32,          // rows of a and out
    k: u32,          // inner dimension
    n4: u32,         // vec4 columns of w
    n_valid: u32,    // output columns stored (≤ 4·n4)
    a_offset: u32,   // f32 index of a's first element
    a_stride: u32,   // f32 elements between rows of a
    a_batch: u32,    // f32 elements between the a matrices of consecutive z
    w_batch: u32,    // vec4 elements between the w matrices of consecutive z
    bias_batch: u32, // vec4 elements between the bias vectors of consecutive z
    out_offset: u32, // f32 index of out's first element
    out_stride: u32, // f32 elements between rows of out
    out_batch: u32,  // f32 elements between the out matrices of consecutive z
    scale_offset: u32, // int8 weights: u32 index of the columns' scales [z][n4] (quads)
}

override WG_X: u32 = 16u; // invocations along vec4 columns
override WG_Y: u32 = 4u;  // invocations along row tiles
const TM: u32 = 4u;       // rows per invocation (mirrored by gemm::ROWS_PER_INVOCATION)

@group(0) @binding(0) var<uniform> p: GemmParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
// binding 2, `w`, read through `load_w`: see shaders/weights/
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// The bias of column n of product z, where a sum starts (`w_start`: float weights) or ends.
fn bias_of(z: u32, n: u32) -> vec4<f32> {
    return bias[z * p.bias_batch + n];
}

// The scales of column n of product z (int8 weights; `w_end` applies them, with the bias
// where `w_start` left it out; float weights read nothing and end with the sum as it is).
fn scale_of(z: u32, n: u32) -> vec4<f32> {
    return w_scale(p.scale_offset + 4u * (z * p.n4 + n));
}

fn store(row: u32, col: u32, v: vec4<f32>) {
    let o = row + col;
    for (var lane = 0u; lane < 4u; lane = lane + 1u) {
        if (col + lane < p.n_valid) {
            out[o + lane] = v[lane];
        }
    }
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = gid.x;
    let m0 = gid.y * TM;
    let z = gid.z;
    if (n >= p.n4 || m0 >= p.m) {
        return;
    }
    // Rows past the end are clamped for loading and skipped when storing.
    let last = p.m - 1u;
    let a0 = p.a_offset + z * p.a_batch;
    let r0 = a0 + m0 * p.a_stride;
    let r1 = a0 + min(m0 + 1u, last) * p.a_stride;
    let r2 = a0 + min(m0 + 2u, last) * p.a_stride;
    let r3 = a0 + min(m0 + 3u, last) * p.a_stride;
    let bn = bias_of(z, n);
    let b = w_start(bn);
    var acc0 = b;
    var acc1 = b;
    var acc2 = b;
    var acc3 = b;
    var wi = z * p.w_batch + n;
    for (var kk = 0u; kk < p.k; kk = kk + 1u) {
        let wv = load_w(wi);
        acc0 = acc0 + a[r0 + kk] * wv;
        acc1 = acc1 + a[r1 + kk] * wv;
        acc2 = acc2 + a[r2 + kk] * wv;
        acc3 = acc3 + a[r3 + kk] * wv;
        wi = wi + p.n4;
    }
    let o = p.out_offset + z * p.out_batch + m0 * p.out_stride;
    let col = 4u * n;
    let sc = scale_of(z, n);
    store(o, col, w_end(acc0, bn, sc));
    if (m0 + 1u < p.m) { store(o + p.out_stride, col, w_end(acc1, bn, sc)); }
    if (m0 + 2u < p.m) { store(o + 2u * p.out_stride, col, w_end(acc2, bn, sc)); }
    if (m0 + 3u < p.m) { store(o + 3u * p.out_stride, col, w_end(acc3, bn, sc)); }
}

// Wide variant: 4 rows × two vec4 columns (n, n + 1) per invocation. Each `a` load feeds
// twice the multiply-adds of `main`, for eight vec4 accumulators instead of four.
@compute @workgroup_size(WG_X, WG_Y, 1)
fn wide(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = 2u * gid.x;
    let m0 = gid.y * TM;
    let z = gid.z;
    if (n >= p.n4 || m0 >= p.m) {
        return;
    }
    // The second column is clamped for loading and skipped when storing.
    let n1 = min(n + 1u, p.n4 - 1u);
    let last = p.m - 1u;
    let a0 = p.a_offset + z * p.a_batch;
    let r0 = a0 + m0 * p.a_stride;
    let r1 = a0 + min(m0 + 1u, last) * p.a_stride;
    let r2 = a0 + min(m0 + 2u, last) * p.a_stride;
    let r3 = a0 + min(m0 + 3u, last) * p.a_stride;
    let bias_a = bias_of(z, n);
    let bias_b = bias_of(z, n1);
    let ba = w_start(bias_a);
    let bb = w_start(bias_b);
    var a0c = ba;
    var a1c = ba;
    var a2c = ba;
    var a3c = ba;
    var b0c = bb;
    var b1c = bb;
    var b2c = bb;
    var b3c = bb;
    var wi = z * p.w_batch;
    for (var kk = 0u; kk < p.k; kk = kk + 1u) {
        let wa = load_w(wi + n);
        let wb = load_w(wi + n1);
        let x0 = a[r0 + kk];
        let x1 = a[r1 + kk];
        let x2 = a[r2 + kk];
        let x3 = a[r3 + kk];
        a0c = a0c + x0 * wa;
        a1c = a1c + x1 * wa;
        a2c = a2c + x2 * wa;
        a3c = a3c + x3 * wa;
        b0c = b0c + x0 * wb;
        b1c = b1c + x1 * wb;
        b2c = b2c + x2 * wb;
        b3c = b3c + x3 * wb;
        wi = wi + p.n4;
    }
    let o = p.out_offset + z * p.out_batch + m0 * p.out_stride;
    let ca = 4u * n;
    let two = n + 1u < p.n4;
    let cb = 4u * (n + 1u);
    let sa = scale_of(z, n);
    let sb = scale_of(z, n1);
    store(o, ca, w_end(a0c, bias_a, sa));
    if (two) { store(o, cb, w_end(b0c, bias_b, sb)); }
    if (m0 + 1u < p.m) {
        store(o + p.out_stride, ca, w_end(a1c, bias_a, sa));
        if (two) { store(o + p.out_stride, cb, w_end(b1c, bias_b, sb)); }
    }
    if (m0 + 2u < p.m) {
        store(o + 2u * p.out_stride, ca, w_end(a2c, bias_a, sa));
        if (two) { store(o + 2u * p.out_stride, cb, w_end(b2c, bias_b, sb)); }
    }
    if (m0 + 3u < p.m) {
        store(o + 3u * p.out_stride, ca, w_end(a3c, bias_a, sa));
        if (two) { store(o + 3u * p.out_stride, cb, w_end(b3c, bias_b, sb)); }
    }
}

// Wider still: 4 rows × four vec4 columns (n … n + 3) per invocation, sixteen vec4
// accumulators. Columns past the end are clamped for loading and skipped when storing.
@compute @workgroup_size(WG_X, WG_Y, 1)
fn wide4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = 4u * gid.x;
    let m0 = gid.y * TM;
    let z = gid.z;
    if (n >= p.n4 || m0 >= p.m) {
        return;
    }
    var acc: array<vec4<f32>, 16>;
    let blk = block_at(n, m0, z, &acc);
    var wi = z * p.w_batch;
    for (var kk = 0u; kk < p.k; kk = kk + 1u) {
        let w0 = load_w(wi + blk.cols.x);
        let w1 = load_w(wi + blk.cols.y);
        let w2 = load_w(wi + blk.cols.z);
        let w3 = load_w(wi + blk.cols.w);
        for (var r = 0u; r < 4u; r = r + 1u) {
            let x = a[blk.rows[r] + kk];
            acc[4u * r] = acc[4u * r] + x * w0;
            acc[4u * r + 1u] = acc[4u * r + 1u] + x * w1;
            acc[4u * r + 2u] = acc[4u * r + 2u] + x * w2;
            acc[4u * r + 3u] = acc[4u * r + 3u] + x * w3;
        }
        wi = wi + p.n4;
    }
    store_block(n, m0, z, &acc);
}

// A block of 4 rows × four vec4 columns (`wide4` and its subgroup form): its columns (clamped to
// the last) and the offsets of its rows in `a` (clamped to the last row).
struct Block {
    cols: vec4<u32>,
    rows: vec4<u32>,
}

// The block whose first column is n and first row m0, in product z, with its sums `acc`
// (acc[4r + c]) started at the bias.
fn block_at(n: u32, m0: u32, z: u32, acc: ptr<function, array<vec4<f32>, 16>>) -> Block {
    let last_col = p.n4 - 1u;
    let cols = vec4<u32>(min(n, last_col), min(n + 1u, last_col), min(n + 2u, last_col),
                         min(n + 3u, last_col));
    let last = p.m - 1u;
    let a0 = p.a_offset + z * p.a_batch;
    let rows = vec4<u32>(a0 + min(m0, last) * p.a_stride, a0 + min(m0 + 1u, last) * p.a_stride,
                         a0 + min(m0 + 2u, last) * p.a_stride, a0 + min(m0 + 3u, last) * p.a_stride);
    for (var c = 0u; c < 4u; c = c + 1u) {
        let b = w_start(bias_of(z, cols[c]));
        for (var r = 0u; r < 4u; r = r + 1u) {
            (*acc)[4u * r + c] = b;
        }
    }
    return Block(cols, rows);
}

// Stores the rows and columns of the block at (m0, n) of product z that lie inside `out`.
fn store_block(n: u32, m0: u32, z: u32, acc: ptr<function, array<vec4<f32>, 16>>) {
    let o = p.out_offset + z * p.out_batch + m0 * p.out_stride;
    for (var c = 0u; c < 4u; c = c + 1u) {
        if (n + c < p.n4) {
            let b = bias_of(z, n + c);
            let sc = scale_of(z, n + c);
            for (var r = 0u; r < 4u; r = r + 1u) {
                if (m0 + r < p.m) {
                    store(o + r * p.out_stride, 4u * (n + c), w_end((*acc)[4u * r + c], b, sc));
                }
            }
        }
    }
}

// Register block of BR rows × BC vec4 columns per invocation (both override constants, up to
// 8): the general form of `main`, `wide` and `wide4`, for the shapes those do not cover.
override BR: u32 = 8u;
override BC: u32 = 4u;
const MAX_B: u32 = 8u;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn block(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = BC * gid.x;
    let m0 = gid.y * BR;
    let z = gid.z;
    if (n >= p.n4 || m0 >= p.m) {
        return;
    }
    let last_col = p.n4 - 1u;
    let last = p.m - 1u;
    let a0 = p.a_offset + z * p.a_batch;
    var rows: array<u32, MAX_B>;
    for (var r = 0u; r < BR; r = r + 1u) {
        rows[r] = a0 + min(m0 + r, last) * p.a_stride;
    }
    var cols: array<u32, MAX_B>;
    for (var c = 0u; c < BC; c = c + 1u) {
        cols[c] = min(n + c, last_col);
    }
    var acc: array<vec4<f32>, 64>;
    for (var c = 0u; c < BC; c = c + 1u) {
        let b = w_start(bias_of(z, cols[c]));
        for (var r = 0u; r < BR; r = r + 1u) {
            acc[MAX_B * r + c] = b;
        }
    }
    var wi = z * p.w_batch;
    var wv: array<vec4<f32>, MAX_B>;
    for (var kk = 0u; kk < p.k; kk = kk + 1u) {
        for (var c = 0u; c < BC; c = c + 1u) {
            wv[c] = load_w(wi + cols[c]);
        }
        for (var r = 0u; r < BR; r = r + 1u) {
            let x = a[rows[r] + kk];
            for (var c = 0u; c < BC; c = c + 1u) {
                acc[MAX_B * r + c] = acc[MAX_B * r + c] + x * wv[c];
            }
        }
        wi = wi + p.n4;
    }
    let o = p.out_offset + z * p.out_batch + m0 * p.out_stride;
    for (var c = 0u; c < BC; c = c + 1u) {
        if (n + c < p.n4) {
            let b = bias_of(z, n + c);
            let sc = scale_of(z, n + c);
            for (var r = 0u; r < BR; r = r + 1u) {
                if (m0 + r < p.m) {
                    store(o + r * p.out_stride, 4u * (n + c), w_end(acc[MAX_B * r + c], b, sc));
                }
            }
        }
    }
}

// Tiled variant: a workgroup of 16 × 16 invocations computes 64 rows × 16 vec4 columns; each
// invocation 4 rows × one vec4 column, as `main` does, but the workgroup stages 16-deep
// slices of `a` (64 × 16) and `w` (16 × 16 vec4) in workgroup memory first, so that each
// value is read from device memory once per workgroup instead of once per invocation that
// uses it. The shape real GPUs reward (shared-memory tiling); software adapters pay for the
// barriers. Same sums in the same order as `main`.
const TILE_K: u32 = 16u;
var<workgroup> a_tile: array<f32, 1024>;       // [TILE_K][64 rows]
var<workgroup> w_tile: array<vec4<f32>, 256>;  // [TILE_K][16 columns]

@compute @workgroup_size(16, 16, 1)
fn tiled(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let z = wid.z;
    let li = lid.y * 16u + lid.x;
    let row_base = wid.y * 64u;
    let n = wid.x * 16u + lid.x;
    let m0 = row_base + lid.y * TM;
    let a0 = p.a_offset + z * p.a_batch;
    let bn = bias_of(z, min(n, p.n4 - 1u));
    let b = w_start(bn);
    var acc0 = b;
    var acc1 = b;
    var acc2 = b;
    var acc3 = b;
    for (var k0 = 0u; k0 < p.k; k0 = k0 + TILE_K) {
        // 1024 values of `a`, four per invocation, neighbours reading neighbouring k.
        for (var i = 0u; i < 4u; i = i + 1u) {
            let idx = li + i * 256u;
            let r = idx / TILE_K;
            let kk = idx % TILE_K;
            let row = row_base + r;
            let k = k0 + kk;
            var v = 0.0;
            if (row < p.m && k < p.k) {
                v = a[a0 + row * p.a_stride + k];
            }
            a_tile[kk * 64u + r] = v;
        }
        let k = k0 + lid.y;
        var wv = vec4<f32>(0.0);
        if (k < p.k && n < p.n4) {
            wv = load_w(z * p.w_batch + k * p.n4 + n);
        }
        w_tile[li] = wv;
        workgroupBarrier();
        let kn = min(TILE_K, p.k - k0);
        for (var kk = 0u; kk < kn; kk = kk + 1u) {
            let w4 = w_tile[kk * 16u + lid.x];
            let ar = kk * 64u + lid.y * TM;
            acc0 = acc0 + a_tile[ar] * w4;
            acc1 = acc1 + a_tile[ar + 1u] * w4;
            acc2 = acc2 + a_tile[ar + 2u] * w4;
            acc3 = acc3 + a_tile[ar + 3u] * w4;
        }
        workgroupBarrier();
    }
    if (n >= p.n4 || m0 >= p.m) {
        return;
    }
    let o = p.out_offset + z * p.out_batch + m0 * p.out_stride;
    let col = 4u * n;
    let sc = scale_of(z, n);
    store(o, col, w_end(acc0, bn, sc));
    if (m0 + 1u < p.m) { store(o + p.out_stride, col, w_end(acc1, bn, sc)); }
    if (m0 + 2u < p.m) { store(o + 2u * p.out_stride, col, w_end(acc2, bn, sc)); }
    if (m0 + 3u < p.m) { store(o + 3u * p.out_stride, col, w_end(acc3, bn, sc)); }
}
