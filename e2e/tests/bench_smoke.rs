//! Short runs of every palaver-bench scenario against two pods: each scenario's own checks
//! (zero loss and reordering, rendered pages of the right shape, every presence frame) hold.

use palaver_e2e::bench::presence::{self, PresenceOpts};
use palaver_e2e::bench::reads::{self, ReadsOpts};
use palaver_e2e::bench::search::{self, SearchOpts};
use palaver_e2e::bench::{self, BenchOpts, PodTarget, Target};
use palaver_e2e::{new_workspace, Pod, PodOptions, Services, TEST_SECRET};

/// Two pods whose per-connection limits do not throttle the generator.
async fn pods(svc: &Services) -> (Pod, Pod) {
    let opts = PodOptions {
        env: vec![("PALAVER_SEND_RATE".into(), "1000".into()), ("PALAVER_SEND_BURST".into(), "1000".into())],
        ..Default::default()
    };
    let a = Pod::start("pod-a", svc, opts.clone()).await.unwrap();
    let b = Pod::start("pod-b", svc, opts).await.unwrap();
    (a, b)
}

fn target(a: &Pod, b: &Pod, ws: &str) -> Target {
    Target {
        pods: vec![format!("ws://127.0.0.1:{}", a.port), format!("ws://127.0.0.1:{}", b.port)],
        workspace: ws.to_string(),
        secret: TEST_SECRET.into(),
    }
}

fn send_opts(a: &Pod, b: &Pod, ws: &str) -> BenchOpts {
    BenchOpts {
        target: target(a, b, ws),
        users: 30,
        channels: 6,
        members: 5,
        senders: 6,
        rate: 200.0,
        duration: 3.0,
        drain: 15.0,
        replies: 0.0,
        reactions: 0.0,
        edits: 0.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bench_short_scenario_has_no_loss_or_reorder() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "bench").await.unwrap();
    let (a, b) = pods(&svc).await;
    let r = bench::run(&send_opts(&a, &b, ws.as_str())).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bench_mixed_operations_are_all_delivered_in_order() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "benchmix").await.unwrap();
    let (a, b) = pods(&svc).await;
    let o = BenchOpts { replies: 0.3, reactions: 0.2, edits: 0.1, ..send_opts(&a, &b, ws.as_str()) };
    let r = bench::run(&o).await.unwrap();
    eprintln!("{}", r.summary());
    for kind in ["send", "reply", "react", "edit"] {
        assert!(r.ops.get(kind).copied().unwrap_or(0) >= 30, "too few {kind} operations: {:?}", r.ops);
    }
    assert_eq!(r.ops.values().sum::<u64>(), 600);
    assert_eq!(r.acked, 600, "every operation changes something: {r:?}");
    assert_eq!(r.noops, 0, "{r:?}");
    assert_eq!(r.expected_deliveries, 600 * 5);
    assert_eq!((r.lost, r.reordered, r.duplicates, r.closed, r.errors), (0, 0, 0, 0, 0), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bench_reads_fetch_rendered_pages() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "benchreads").await.unwrap();
    let (a, _b) = pods(&svc).await;
    let o = ReadsOpts {
        target: PodTarget { pod: format!("ws://127.0.0.1:{}", a.port), workspace: ws.to_string(), secret: TEST_SECRET.into() },
        messages: 12,
        replies: 20,
        reactors: 2,
        emoji: 2,
        requests: 30,
        concurrency: 2,
    };
    // The run checks each page's contents (reactions, summaries, all replies) before timing.
    let r = reads::run(&o).await.unwrap();
    eprintln!("{}", r.summary());
    assert_eq!((r.history.samples, r.thread.samples), (30, 30));
    assert_eq!(r.reactions_per_message, 4);
    assert!(r.history_bytes > 0 && r.thread_bytes > 0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bench_presence_delivers_every_transition_to_every_follower() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "benchpresence").await.unwrap();
    let (a, b) = pods(&svc).await;
    let o = PresenceOpts {
        target: target(&a, &b, ws.as_str()),
        users: 60,
        subs: 5,
        idle: 1.0,
        churn_secs: 2.0,
        churn: 20.0,
        redis: Some(svc.redis_url.clone()),
        connect_concurrency: 16,
        drain: 15.0,
    };
    let r = presence::run(&o).await.unwrap();
    eprintln!("{}", r.summary());
    assert_eq!(r.subscribe.frames, 60 * 5, "{r:?}");
    assert_eq!(r.transitions, 40);
    assert_eq!(r.churn.frames, 40 * 5, "{r:?}");
    assert_eq!(r.idle.frames, 0, "{r:?}");
    assert_eq!(r.transition_latency.samples, 40 * 5, "{r:?}");
    assert!(r.ok(), "{r:?}");
    // Each transition is published once (the pods share Redis with other tests, hence >=).
    assert!(r.churn.redis_by_command.get("publish").copied().unwrap_or(0.0) * r.churn.secs >= 39.0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_search_seeds_the_index_and_times_every_query_kind() {
    let svc = Services::from_env();
    let ws = new_workspace(&svc, "sbench").await.unwrap();
    let opts = PodOptions { env: vec![("PALAVER_SEARCH_RATE_PER_MINUTE".into(), "100000".into())], ..Default::default() };
    let pod = Pod::start("pod-sbench", &svc, opts).await.unwrap();
    let o = SearchOpts {
        target: PodTarget { pod: format!("ws://127.0.0.1:{}", pod.port), workspace: ws.to_string(), secret: TEST_SECRET.into() },
        database_url: svc.database_url.clone(),
        messages: 20_000,
        channels: 4,
        // 15,000 readable messages: the rarest "common" query (`w5 -meeting has:link`, about
        // 0.32 % of messages) then has ~49 matches; with 10,000 it had ~32, and one run in a
        // hundred found fewer than a page.
        member_of: 3,
        users: 10,
        requests: 3,
    };
    let r = search::run(&o).await.unwrap();
    eprintln!("{}", r.summary());
    assert_eq!(r.index_rows, 20_000);
    assert_eq!(r.queries.len(), 7);
    for q in &r.queries {
        assert_eq!(q.latency.samples, 3, "{q:?}");
        // Common enough to fill a page (the rare word is not).
        if q.name != "rare" {
            assert_eq!(q.results, 20, "{q:?}");
        }
    }
}
