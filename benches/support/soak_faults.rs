//! The soak's faults: which requests on which path meet what, and how often.

use std::time::Duration;

use super::common::fault_proxy::{Fault, FaultProxy, Route};

const MIB: u64 = 1 << 20;

/// The four proxies of the soak, one per path glint uses.
pub struct Proxies<'a> {
    pub glance: &'a FaultProxy,
    pub keystone: &'a FaultProxy,
    pub source: &'a FaultProxy,
    pub mirror: &'a FaultProxy,
}

impl Proxies<'_> {
    pub fn named(&self) -> [(&'static str, &FaultProxy); 4] {
        [
            ("Glance", self.glance),
            ("Keystone", self.keystone),
            ("source", self.source),
            ("mirror", self.mirror),
        ]
    }
}

/// Faults at random on every path from now on. The rates are high enough that most uploads
/// of the first minutes break at least once, low enough that work still gets through.
pub fn arm(proxies: &Proxies<'_>, seed: u64) {
    let stall = Duration::from_secs(30);
    let slow = Duration::from_secs(3);
    let glance = proxies.glance;
    glance.seed(seed);
    glance.inject_at_random(
        Route::new("PUT", "/v2/images/*/file"),
        vec![
            Fault::CutBodyAfter(MIB),
            Fault::CutBodyAfter(48 * MIB),
            Fault::StallBodyAfter(16 * MIB, stall),
            Fault::SwallowThen(502),
            Fault::ActThenRefuse(502),
            Fault::Status(503),
        ],
        3,
    );
    glance.inject_at_random(
        Route::new("POST", "/v2/images"),
        vec![
            Fault::Status(503),
            Fault::Drop,
            Fault::LoseAnswer,
            Fault::Delay(slow),
        ],
        4,
    );
    for read in ["/v2/images", "/v2/images/*"] {
        glance.inject_at_random(
            Route::new("GET", read),
            vec![Fault::Status(503), Fault::Drop, Fault::Delay(slow)],
            6,
        );
    }
    glance.inject_at_random(
        Route::new("DELETE", "/v2/images/*"),
        vec![Fault::Status(503), Fault::Drop, Fault::LoseAnswer],
        3,
    );
    glance.inject_at_random(
        Route::new("PATCH", "/v2/images/*"),
        vec![Fault::Status(503), Fault::LoseAnswer],
        4,
    );
    let keystone = proxies.keystone;
    keystone.seed(seed + 1);
    keystone.inject_at_random(
        Route::new("POST", "/v3/auth/tokens"),
        vec![Fault::Status(503), Fault::Drop, Fault::Delay(slow)],
        2,
    );
    let source = proxies.source;
    source.seed(seed + 2);
    source.inject_at_random(
        Route::new("GET", "*"),
        vec![
            Fault::CutAnswerAfter(8 * MIB),
            Fault::CutAnswerAfter(100 * MIB),
            Fault::StallAnswerAfter(32 * MIB, stall),
            Fault::Status(503),
            Fault::Drop,
        ],
        3,
    );
    let mirror = proxies.mirror;
    mirror.seed(seed + 3);
    mirror.inject_at_random(
        Route::new("GET", "*"),
        vec![
            Fault::CutAnswerAfter(4 * MIB),
            Fault::Status(503),
            Fault::Drop,
            Fault::Delay(slow),
        ],
        4,
    );
}

/// No more faults on any path.
pub fn disarm(proxies: &Proxies<'_>) {
    for (_, proxy) in proxies.named() {
        proxy.clear();
        proxy.end_outage();
    }
}
