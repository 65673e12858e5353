//! `signalr_connections{hub,transport}` is incremented and decremented under the same
//! transport label, whatever order the client's first requests come in.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Counter, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use parking_lot::Mutex;
use serde_json::json;
use signalr::HubOptions;

use crate::common::*;

/// One gauge's value (an `f64` kept as bits).
#[derive(Default)]
struct Value(AtomicU64);

impl Value {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::SeqCst))
    }

    fn update(&self, f: impl Fn(f64) -> f64) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |bits| {
                Some(f(f64::from_bits(bits)).to_bits())
            });
    }
}

impl GaugeFn for Value {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }
    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }
    fn set(&self, value: f64) {
        self.update(|_| value);
    }
}

/// Keeps gauges (by name and labels) and ignores everything else. Shared by every test
/// of this binary, which is why each test uses its own hub name.
#[derive(Default)]
struct Gauges(Mutex<HashMap<String, Arc<Value>>>);

fn id(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    format!("{name}{{{}}}", labels.join(","))
}

impl metrics::Recorder for Gauges {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let labels: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
        let value = self
            .0
            .lock()
            .entry(id(key.name(), &labels))
            .or_default()
            .clone();
        Gauge::from_arc(value)
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn gauges() -> &'static Gauges {
    static GAUGES: OnceLock<&'static Gauges> = OnceLock::new();
    GAUGES.get_or_init(|| {
        let gauges: &'static Gauges = Box::leak(Box::default());
        metrics::set_global_recorder(gauges).expect("no other recorder in this test binary");
        gauges
    })
}

fn connections(hub: &str, transport: &str) -> f64 {
    gauges()
        .0
        .lock()
        .get(&id(
            "signalr_connections",
            &[("hub", hub), ("transport", transport)],
        ))
        .map_or(0.0, |v| v.get())
}

#[tokio::test]
async fn connection_gauge_returns_to_zero_when_the_handshake_precedes_the_first_poll() {
    const HUB: &str = "gauge-lp-reversed";
    gauges();
    let s = start_named(
        HUB,
        HubOptions {
            long_poll_timeout: Duration::from_millis(200),
            disconnect_timeout: Duration::from_millis(200),
            ..HubOptions::default()
        },
    )
    .await;
    let http = reqwest::Client::new();
    for round in 0..3 {
        let n = negotiate(&s, "?negotiateVersion=1").await;
        let token = n["connectionToken"].as_str().unwrap();
        let id = n["connectionId"].as_str().unwrap().to_owned();
        let url = s.http(&format!("/hubs/test?id={token}"));

        // The handshake is POSTed before the first poll (the official client does the reverse).
        let handshake = format!("{{\"protocol\":\"json\",\"version\":1}}{RS}");
        let status = http
            .post(&url)
            .body(handshake)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
        let first = http.get(&url).send().await.unwrap();
        assert_eq!(first.status(), 200);
        let second = http.get(&url).send().await.unwrap();
        assert_eq!(second.status(), 200);
        assert_eq!(second.text().await.unwrap(), format!("{}{RS}", json!({})));
        assert_eq!(connections(HUB, "LongPolling"), 1.0, "round {round}");
        assert_eq!(connections(HUB, "WebSockets"), 0.0, "round {round}");

        // No more polls: the connection times out and is removed.
        eventually("the connection to time out", || {
            s.handler.disconnected.lock().contains(&id)
        })
        .await;
        assert_eq!(connections(HUB, "LongPolling"), 0.0, "round {round}");
        assert_eq!(connections(HUB, "WebSockets"), 0.0, "round {round}");
    }
}

#[tokio::test]
async fn connection_gauge_counts_each_transport_under_its_own_label() {
    const HUB: &str = "gauge-per-transport";
    gauges();
    let s = start_named(HUB, HubOptions::default()).await;
    let mut ws = Client::json(&s.ws(""), 1).await;
    let id = ws.invoke("1", "WhoAmI", json!([])).await["result"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(connections(HUB, "WebSockets"), 1.0);
    ws.send_json(json!({"type": 7})).await;
    assert!(ws.closed_within(Duration::from_secs(5)).await);
    eventually("the connection to go", || {
        s.handler.disconnected.lock().contains(&id)
    })
    .await;
    assert_eq!(connections(HUB, "WebSockets"), 0.0);
    assert_eq!(connections(HUB, "LongPolling"), 0.0);
}
