//! The uniffi bindings generator, built from this workspace so that its version always
//! matches the `uniffi` the library was built with. Run by `scripts/generate-bindings.sh`:
//! `uniffi-bindgen generate <libfieldline_mobile.so> --language kotlin --out-dir …`
//! (library mode: the interface is read from the metadata embedded in the library).

fn main() {
    uniffi::uniffi_bindgen_main()
}
