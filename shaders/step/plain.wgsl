// Appended to `step.wgsl` on devices without subgroup kernels: the recurrent product is
// `product` (`subgroup.wgsl` defines `recurrent` where subgroups exist).

fn recurrent(j4: u32, d: u32, s: u32, src: u32, base: ptr<function, array<u32, MAX_BT>>,
             acc: ptr<function, array<vec4<f32>, MAX_BT>>,
             acc2: ptr<function, array<vec4<f32>, MAX_BT>>) {
    product(j4, d, s, src, base, acc, acc2);
}
