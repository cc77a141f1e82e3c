// sqlx::migrate! embeds migrations/ at compile time; without this, a new migration file does
// not rebuild the operator and would be silently missing from it.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
