// Input projection: a batched matrix product with bias, output in vec4 columns.
//
//   out[z][m][n] = bias[z][n] + Σ_k a[m][k] · w[z][k][n]        (n indexes vec4 columns)
//
// `a` is shared by every z (the layer input, [T·B, K] row-major); z is the direction. `w` is
// stored K-major ([K, N/4] of vec4), so the four gates of one hidden unit — packed together at
// upload — are one vec4 and neighbouring invocations read neighbouring memory.
//
// Each invocation computes TM rows × one vec4 column in registers (register blocking, no
// barriers: barriers are expensive on software adapters and not needed at this size).

struct GemmParams {
    m: u32,          // rows of a and out
    k: u32,          // inner dimension
    n4: u32,         // vec4 columns of w and out
    a_stride: u32,   // f32 elements between rows of a
    w_batch: u32,    // vec4 elements between the w matrices of consecutive z
    out_batch: u32,  // vec4 elements between the out matrices of consecutive z
    bias_batch: u32, // vec4 elements between the bias vectors of consecutive z
    _pad: u32,
}

override WG_X: u32 = 16u; // invocations along vec4 columns
override WG_Y: u32 = 4u;  // invocations along row tiles
const TM: u32 = 4u;       // rows per invocation (mirrored by gemm::ROWS_PER_INVOCATION)

@group(0) @binding(0) var<uniform> p: GemmParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;

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
    let r0 = m0 * p.a_stride;
    let r1 = min(m0 + 1u, last) * p.a_stride;
    let r2 = min(m0 + 2u, last) * p.a_stride;
    let r3 = min(m0 + 3u, last) * p.a_stride;
    let b = bias[z * p.bias_batch + n];
    var acc0 = b;
    var acc1 = b;
    var acc2 = b;
    var acc3 = b;
    var wi = z * p.w_batch + n;
    for (var kk = 0u; kk < p.k; kk = kk + 1u) {
        let wv = w[wi];
        acc0 = acc0 + a[r0 + kk] * wv;
        acc1 = acc1 + a[r1 + kk] * wv;
        acc2 = acc2 + a[r2 + kk] * wv;
        acc3 = acc3 + a[r3 + kk] * wv;
        wi = wi + p.n4;
    }
    let o = z * p.out_batch + m0 * p.n4 + n;
    out[o] = acc0;
    if (m0 + 1u < p.m) { out[o + p.n4] = acc1; }
    if (m0 + 2u < p.m) { out[o + 2u * p.n4] = acc2; }
    if (m0 + 3u < p.m) { out[o + 3u * p.n4] = acc3; }
}
