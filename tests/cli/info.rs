//! `info`: the adapters wgpu finds.

use crate::common::gpu;
use crate::{assert_ok, run};

#[test]
fn info_lists_adapters() {
    let Some(ctx) = gpu() else { return };
    let out = run(&["info"]);
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("adapter 0:"), "{text}");
    assert!(text.contains("max_storage_buffer_binding_size"), "{text}");
    // --backend keeps that backend's adapters only.
    let backend = format!("{:?}", ctx.adapter_info().backend);
    let out = run(&["info", "--backend", &backend.to_lowercase()]);
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines().filter(|l| l.starts_with("adapter")) {
        assert!(line.contains(&format!("{backend} backend")), "{line}");
    }
    // --adapter that matches nothing: one clear line, non-zero exit.
    let out = run(&["info", "--adapter", "no-such-adapter"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no GPU adapter found with a name containing `no-such-adapter`"),
        "{err}"
    );
}
