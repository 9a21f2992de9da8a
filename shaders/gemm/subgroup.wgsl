// Subgroup variants of the GEMM, appended to `gemm.wgsl` on devices with subgroup operations
// and subgroups of at least 8 invocations (`GemmVariant::Wide4Subgroup`).
//
// `wide4_sg` computes what `wide4` computes — 4 rows × four vec4 columns per invocation, the
// same sums in the same order, so the same bits — but loads `a` once per 8 values of k and
// row: invocation `lane` of each subgroup loads element k0 + lane mod 8 of its rows (all the
// invocations of a workgroup share their rows), and `subgroupBroadcast` hands each of the 8
// values to the whole subgroup. Loads from storage buffers are what software adapters spend
// their time on (each one a loop over the vector lanes); a broadcast is a register move. The
// workgroup is one-dimensional (subgroup builtins require it), and every invocation runs the
// loop — the broadcasts need the whole subgroup — with its columns clamped; only the
// invocations inside the matrix store.

// acc[4r + c] += x[r] · w(k, column c) for one k; returns the next k's weight index.
fn wide4_sg_k(wi: u32, cols: vec4<u32>, x: vec4<f32>, acc: ptr<function, array<vec4<f32>, 16>>)
    -> u32 {
    let w0 = load_w(wi + cols.x);
    let w1 = load_w(wi + cols.y);
    let w2 = load_w(wi + cols.z);
    let w3 = load_w(wi + cols.w);
    for (var r = 0u; r < 4u; r = r + 1u) {
        (*acc)[4u * r] = (*acc)[4u * r] + x[r] * w0;
        (*acc)[4u * r + 1u] = (*acc)[4u * r + 1u] + x[r] * w1;
        (*acc)[4u * r + 2u] = (*acc)[4u * r + 2u] + x[r] * w2;
        (*acc)[4u * r + 3u] = (*acc)[4u * r + 3u] + x[r] * w3;
    }
    return wi + p.n4;
}

@compute @workgroup_size(WG_X * WG_Y, 1, 1)
fn wide4_sg(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(subgroup_invocation_id) lane: u32) {
    let n = 4u * gid.x;
    let m0 = gid.y * TM;
    let z = gid.z;
    var acc: array<vec4<f32>, 16>;
    let blk = block_at(n, m0, z, &acc);
    let cols = blk.cols;
    let rows = blk.rows;
    var wi = z * p.w_batch;
    let kb = p.k / 8u * 8u;
    let mine = lane & 7u;
    for (var k0 = 0u; k0 < kb; k0 = k0 + 8u) {
        let x0 = a[rows[0] + k0 + mine];
        let x1 = a[rows[1] + k0 + mine];
        let x2 = a[rows[2] + k0 + mine];
        let x3 = a[rows[3] + k0 + mine];
        // The 8 values of k in order (broadcast lanes must be constants).
        wi = wide4_sg_k(wi, cols, vec4<f32>(subgroupBroadcast(x0, 0u), subgroupBroadcast(x1, 0u),
                                       subgroupBroadcast(x2, 0u), subgroupBroadcast(x3, 0u)), &acc);
        wi = wide4_sg_k(wi, cols, vec4<f32>(subgroupBroadcast(x0, 1u), subgroupBroadcast(x1, 1u),
                                       subgroupBroadcast(x2, 1u), subgroupBroadcast(x3, 1u)), &acc);
        wi = wide4_sg_k(wi, cols, vec4<f32>(subgroupBroadcast(x0, 2u), subgroupBroadcast(x1, 2u),
                                       subgroupBroadcast(x2, 2u), subgroupBroadcast(x3, 2u)), &acc);
        wi = wide4_sg_k(wi, cols, vec4<f32>(subgroupBroadcast(x0, 3u), subgroupBroadcast(x1, 3u),
                                       subgroupBroadcast(x2, 3u), subgroupBroadcast(x3, 3u)), &acc);
        wi = wide4_sg_k(wi, cols, vec4<f32>(subgroupBroadcast(x0, 4u), subgroupBroadcast(x1, 4u),
                                       subgroupBroadcast(x2, 4u), subgroupBroadcast(x3, 4u)), &acc);
        wi = wide4_sg_k(wi, cols, vec4<f32>(subgroupBroadcast(x0, 5u), subgroupBroadcast(x1, 5u),
                                       subgroupBroadcast(x2, 5u), subgroupBroadcast(x3, 5u)), &acc);
        wi = wide4_sg_k(wi, cols, vec4<f32>(subgroupBroadcast(x0, 6u), subgroupBroadcast(x1, 6u),
                                       subgroupBroadcast(x2, 6u), subgroupBroadcast(x3, 6u)), &acc);
        wi = wide4_sg_k(wi, cols, vec4<f32>(subgroupBroadcast(x0, 7u), subgroupBroadcast(x1, 7u),
                                       subgroupBroadcast(x2, 7u), subgroupBroadcast(x3, 7u)), &acc);
    }
    for (var kk = kb; kk < p.k; kk = kk + 1u) {
        let x = vec4<f32>(a[rows[0] + kk], a[rows[1] + kk], a[rows[2] + kk], a[rows[3] + kk]);
        wi = wide4_sg_k(wi, cols, x, &acc);
    }
    if (n < p.n4 && m0 < p.m) {
        store_block(n, m0, z, &acc);
    }
}
