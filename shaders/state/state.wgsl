// The state table of a batcher: the recurrent state of every open sequence, one slot each,
// kept on the device between rounds. A round gathers its rows' states from their slots into
// the forward's state buffers before its first step kernel and scatters the final states back
// into the slots after its last, in the same submission: no state crosses to the host.
//
// Layouts (float32, row-major):
//   table_h [slots, LD, W_H]   table_c [slots, LD, W_C]      (LD = layers × directions)
//   state_h [LD, ROWS, W_H]    state_c [LD, ROWS, W_C]       (the forward's h0 / h_n and c)
// `gather`: state[ld, r, :] = table[slots[r], ld, :]; `scatter`: the reverse. W_C is 0 for
// cells without a cell state (`table_c` and `state_c` are then placeholders, never touched).

struct StateParams {
    // Rows of the round (its batch).
    rows: u32,
    // Layers × directions.
    ld: u32,
    // Width of a hidden state: H, or the projection size.
    width_h: u32,
    // Width of a cell state: H for an LSTM, else 0.
    width_c: u32,
}

@group(0) @binding(0) var<uniform> params: StateParams;
@group(0) @binding(1) var<storage, read> slots: array<u32>;
@group(0) @binding(2) var<storage, read_write> table_h: array<f32>;
@group(0) @binding(3) var<storage, read_write> table_c: array<f32>;
@group(0) @binding(4) var<storage, read_write> state_h: array<f32>;
@group(0) @binding(5) var<storage, read_write> state_c: array<f32>;

// Threads of a workgroup; the dispatch's workgroups stride over every element.
const WG: u32 = 64u;

// Element `i` of a `[LD, ROWS, width]` state: its index there and in the table.
struct Pair {
    state: u32,
    table: u32,
}

fn pair(i: u32, width: u32) -> Pair {
    let u = i % width;
    let r = (i / width) % params.rows;
    let ld = i / (width * params.rows);
    return Pair(i, (slots[r] * params.ld + ld) * width + u);
}

@compute @workgroup_size(WG)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>,
          @builtin(num_workgroups) groups: vec3<u32>) {
    let stride = groups.x * WG;
    let nh = params.ld * params.rows * params.width_h;
    for (var i = gid.x; i < nh; i += stride) {
        let p = pair(i, params.width_h);
        state_h[p.state] = table_h[p.table];
    }
    let nc = params.ld * params.rows * params.width_c;
    for (var i = gid.x; i < nc; i += stride) {
        let p = pair(i, params.width_c);
        state_c[p.state] = table_c[p.table];
    }
}

@compute @workgroup_size(WG)
fn scatter(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) groups: vec3<u32>) {
    let stride = groups.x * WG;
    let nh = params.ld * params.rows * params.width_h;
    for (var i = gid.x; i < nh; i += stride) {
        let p = pair(i, params.width_h);
        table_h[p.table] = state_h[p.state];
    }
    let nc = params.ld * params.rows * params.width_c;
    for (var i = gid.x; i < nc; i += stride) {
        let p = pair(i, params.width_c);
        table_c[p.table] = state_c[p.state];
    }
}
