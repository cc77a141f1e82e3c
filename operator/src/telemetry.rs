//! Logging: JSON lines unless `PALAVER_LOG_FORMAT=text` (same switch as palaverd).

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,rdkafka=warn,kube=warn"));
    let text = std::env::var("PALAVER_LOG_FORMAT").is_ok_and(|v| v == "text");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if text {
        builder.init();
    } else {
        builder.json().flatten_event(true).with_current_span(false).init();
    }
}
