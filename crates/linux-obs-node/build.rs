//! Build script: links the napi symbols the Node process provides.
fn main() {
    napi_build::setup();
}
