//! The one error type of the browser layer, and the panic hook.

use std::cell::RefCell;

use wasm_bindgen::prelude::*;

/// An error crossing into JavaScript: the core [`Error`](ct_triage_core::Error)'s
/// code and message, or an adapter code (`invalid_argument` for bad options).
///
/// In JavaScript it is an `Error` with `name` `"CtTriageError"`, the `code`
/// property and the `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmError {
    /// Machine-readable code ([`ct_triage_core::Error::code`]).
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl WasmError {
    /// An error with a code and a message.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        WasmError {
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// An invalid argument passed from JavaScript.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::from(ct_triage_core::Error::InvalidArgument(message.into()))
    }

    /// Serialising an output failed.
    pub fn output(e: impl std::fmt::Display) -> Self {
        Self::from(ct_triage_core::Error::Output {
            what: "json".into(),
            message: e.to_string(),
        })
    }
}

impl std::fmt::Display for WasmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for WasmError {}

impl From<ct_triage_core::Error> for WasmError {
    fn from(e: ct_triage_core::Error) -> Self {
        WasmError {
            code: e.code().to_string(),
            message: e.to_string(),
        }
    }
}

impl From<ct_triage_core::AnalysisError> for WasmError {
    fn from(e: ct_triage_core::AnalysisError) -> Self {
        ct_triage_core::Error::from(e).into()
    }
}

impl From<WasmError> for JsValue {
    fn from(e: WasmError) -> JsValue {
        let err = js_sys::Error::new(&e.message);
        err.set_name("CtTriageError");
        // Setting a property on a fresh Error object cannot fail.
        let _ = js_sys::Reflect::set(&err, &"code".into(), &e.code.into());
        err.into()
    }
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(s: &str);
}

/// Keep the message of a panic (a bug) and log it before the instance traps.
pub(crate) fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = format!("ct-triage-wasm panicked: {info}");
        #[cfg(target_arch = "wasm32")]
        console_error(&msg);
        let _ = LAST_PANIC.try_with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                *p = Some(msg);
            }
        });
    }));
}

/// The last panic message, if any.
pub(crate) fn last_panic() -> Option<String> {
    LAST_PANIC
        .try_with(|p| p.try_borrow().ok().and_then(|p| p.clone()))
        .ok()
        .flatten()
}
