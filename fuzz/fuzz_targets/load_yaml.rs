//! Any text given to the resource loader must yield resources or located diagnostics, never a
//! panic; a model built from what loads must resolve every node and lint without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut loader = policy_ir::load::Loader::new();
    loader.add_text("fuzz.yaml", text);
    match loader.finish() {
        Ok(res) => {
            let model = policy_ir::Model::from_resources(res);
            for n in model.nodes() {
                let _ = model.node_ir(&n);
            }
            let _ = policy_ir::lint::lint(&model);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
