//! The strict JSON reader behind `*.json` files: any text must yield resources or located
//! diagnostics, never a panic, and when both readers load it, the YAML reader (JSON is YAML)
//! must produce the same resources.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn load(name: &str, text: &str) -> Result<policy_ir::resources::Resources, String> {
    let mut loader = policy_ir::load::Loader::new();
    loader.add_text(name, text);
    loader.finish().map_err(|e| e.to_string())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match load("fuzz.json", text) {
        Ok(res) => {
            // JSON is YAML except for a few characters YAML does not allow raw (DEL, C1
            // controls inside strings): where the YAML reader loads the text too, both agree.
            if let Ok(as_yaml) = load("fuzz.yaml", text) {
                assert_eq!(
                    format!("{res:?}").replace("fuzz.json", "fuzz.yaml"),
                    format!("{as_yaml:?}")
                );
            }
            let model = policy_ir::Model::from_resources(res);
            for n in model.nodes() {
                let _ = model.node_ir(&n);
            }
        }
        Err(e) => assert!(e.contains("fuzz.json:"), "{e}"),
    }
});
