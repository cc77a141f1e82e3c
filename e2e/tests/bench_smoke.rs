//! A short palaver-bench scenario: zero loss and zero reordering across two pods.

use palaver_e2e::bench::{self, BenchOpts};
use palaver_e2e::{new_workspace, Pod, PodOptions, Services, TEST_SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bench_short_scenario_has_no_loss_or_reorder() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "bench").await.unwrap();
    let opts = PodOptions {
        env: vec![("PALAVER_SEND_RATE".into(), "1000".into()), ("PALAVER_SEND_BURST".into(), "1000".into())],
        ..Default::default()
    };
    let a = Pod::start("pod-a", &svc, opts.clone()).await.unwrap();
    let b = Pod::start("pod-b", &svc, opts).await.unwrap();
    let o = BenchOpts {
        pods: vec![format!("ws://127.0.0.1:{}", a.port), format!("ws://127.0.0.1:{}", b.port)],
        workspace: ws.to_string(),
        secret: TEST_SECRET.into(),
        users: 30,
        channels: 6,
        members: 5,
        senders: 6,
        rate: 200.0,
        duration: 3.0,
        drain: 15.0,
    };
    let r = bench::run(&o).await.unwrap();
    eprintln!("{}", r.summary());
    assert_eq!(r.sent, 600);
    assert_eq!(r.acked, 600, "{r:?}");
    assert_eq!(r.expected_deliveries, 600 * 5);
    assert_eq!(r.lost, 0, "{r:?}");
    assert_eq!(r.reordered, 0, "{r:?}");
    assert_eq!(r.duplicates, 0, "{r:?}");
    assert_eq!(r.closed, 0, "{r:?}");
    assert!(r.delivery_latency.samples >= 3000);
}
