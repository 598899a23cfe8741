//! Progress and cancellation: the core's [`Progress`] over two JavaScript callbacks.
//!
//! The callbacks live in a thread-local slot for the duration of one call
//! ([`install`]), so [`JsProgress`] itself holds no JavaScript value and is
//! `Sync` as the core requires. On wasm32 rayon runs every parallel loop on
//! the calling thread, so the callbacks are always reachable; on any other
//! thread the slot is simply empty.

use std::cell::RefCell;

use ct_triage_core::progress::{Progress, Stage};
use wasm_bindgen::JsValue;

/// Smallest change of a stage's fraction that is reported (keeps JS calls few).
const STEP: f64 = 0.01;

struct Slot {
    on_progress: Option<js_sys::Function>,
    is_cancelled: Option<js_sys::Function>,
    last: Option<(Stage, f64)>,
    cancelled: bool,
}

thread_local! {
    static SLOT: RefCell<Option<Slot>> = const { RefCell::new(None) };
}

/// Removes the callbacks when the call that installed them returns.
pub(crate) struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = SLOT.try_with(|s| s.try_borrow_mut().map(|mut s| *s = None));
    }
}

/// Install the callbacks for one call.
pub(crate) fn install(
    on_progress: Option<js_sys::Function>,
    is_cancelled: Option<js_sys::Function>,
) -> Guard {
    let _ = SLOT.try_with(|s| {
        s.try_borrow_mut().map(|mut s| {
            *s = Some(Slot {
                on_progress,
                is_cancelled,
                last: None,
                cancelled: false,
            })
        })
    });
    Guard
}

/// The core's [`Progress`], forwarding to the installed JavaScript callbacks:
/// `onProgress(stage, fraction)` (throttled to steps of 1 % and stage changes)
/// and `isCancelled() → boolean` (sticky once true).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsProgress;

impl Progress for JsProgress {
    fn progress(&self, stage: Stage, fraction: f64) {
        let _ = SLOT.try_with(|s| {
            let Ok(mut s) = s.try_borrow_mut() else {
                return;
            };
            let Some(slot) = s.as_mut() else { return };
            let report = match slot.last {
                Some((st, f)) => {
                    st != stage || (fraction - f).abs() >= STEP || (fraction >= 1.0 && f < 1.0)
                }
                None => true,
            };
            if !report {
                return;
            }
            slot.last = Some((stage, fraction));
            if let Some(cb) = &slot.on_progress {
                // A throwing callback must not stop the analysis.
                let _ = cb.call2(
                    &JsValue::NULL,
                    &JsValue::from_str(stage.name()),
                    &JsValue::from_f64(fraction.clamp(0.0, 1.0)),
                );
            }
        });
    }

    fn is_cancelled(&self) -> bool {
        SLOT.try_with(|s| {
            let Ok(mut s) = s.try_borrow_mut() else {
                return false;
            };
            let Some(slot) = s.as_mut() else { return false };
            if !slot.cancelled
                && let Some(cb) = &slot.is_cancelled
            {
                slot.cancelled = cb
                    .call0(&JsValue::NULL)
                    .map(|v| v.is_truthy())
                    .unwrap_or(false);
            }
            slot.cancelled
        })
        .unwrap_or(false)
    }
}
