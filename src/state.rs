//! What every call shares: the configuration, the keys, the store, the delivery channels, the
//! clock and the compiled policy. Built once by `app::Application`; read by the
//! TSH-facing API (`api`) and the admin API (`admin`) alike, so neither imports the other.

use crate::clock::Clock;
use crate::config::Config;
use crate::controls::sim_swap::SimSwap;
use crate::data_keys::DataKeys;
use crate::decision::Policy;
use crate::delivery::Delivery;
use crate::envelope::KeyRing;
use crate::store::Store;
use std::sync::Arc;

/// Everything a call needs, shared by all calls.
pub struct AppState {
    pub config: Config,
    pub keys: KeyRing,
    pub data_keys: DataKeys,
    pub store: Store,
    pub delivery: Delivery,
    pub clock: Clock,
    pub policy: Policy,
    /// The SIM-swap check before SMS, when `[sim_swap]` is configured.
    pub sim_swap: Option<SimSwap>,
}

pub type SharedState = Arc<AppState>;
