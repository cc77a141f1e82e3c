//! Rebuilds palaverd when the web app's build output changes. rust-embed compiles
//! clients/web/dist into the binary (gateway/web.rs), and a new Vite build adds files under new
//! hashed names, which cargo would not notice on its own. Without a build there is no dist/:
//! then the app's sources are watched, so the build that creates dist/ triggers a rebuild.
use std::path::Path;

fn main() {
    let dist = Path::new("../clients/web/dist");
    let watched = if dist.is_dir() { dist } else { Path::new("../clients/web") };
    println!("cargo::rerun-if-changed={}", watched.display());
    println!("cargo::rerun-if-changed=build.rs");
}
