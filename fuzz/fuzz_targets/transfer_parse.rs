//! `admin::transfer::parse` on arbitrary UTF-8; when it parses, the records
//! are imported into a fresh store, and that store's export must parse again.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use wasm_state::admin::transfer::{self, Selection, TransferError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let records = match transfer::parse(text) {
        Ok(r) => r,
        Err(TransferError::Line { line, message }) => {
            if std::env::var_os("FUZZ_DEBUG").is_some() {
                eprintln!("line {line}: {message}");
            }
            assert!(line >= 1, "line numbers are 1-based");
            return;
        }
        Err(e) => panic!("parse gave a non-line error: {e:?}"),
    };
    // Cap the work per input: an import of a huge record set is no news.
    if records.len() > 256 {
        return;
    }
    let f = common::fresh();
    common::rt().block_on(async {
        let debug = std::env::var_os("FUZZ_DEBUG").is_some();
        match transfer::import(&f.store, records, &mut |_| {}).await {
            Ok(counts) if debug => eprintln!("imported {counts:?}"),
            Ok(_) => {}
            Err(TransferError::State(e)) => common::check_err("import", &e),
            Err(TransferError::Line { .. }) => {}
            Err(e) => panic!("import gave {e:?}"),
        }
        // Whatever got in must come out as an export that parses.
        let mut lines = Vec::new();
        let mut emit = |l: String| {
            lines.push(l);
            transfer::emitted(Ok(()))
        };
        match transfer::export(&f.store, &Selection::All, &mut emit).await {
            Ok(_) => {
                let again = lines.join("\n");
                if let Err(e) = transfer::parse(&again) {
                    panic!("an export does not parse: {e}\n--- export ---\n{again}");
                }
            }
            Err(TransferError::State(e)) => common::check_err("export", &e),
            Err(e) => panic!("export gave {e:?}"),
        }
    });
});
