//! The State provider sample of Vonage Cloud Runtime, as a command component.
//!
//! VCR's sample stores each customer in the instance-state map `customers`,
//! keyed by phone number (`mapSet`), and looks one up by number when a call
//! comes in (`mapGetValue`). Here the HTTP handlers are subcommands:
//!
//! ```text
//! wasm-state run customers.wasm -- add +447700900001 Ada ada@example.com
//! wasm-state run customers.wasm -- lookup +447700900001     # prints: Ada
//! wasm-state run customers.wasm -- list
//! ```
//!
//! Instance state outlives every run: it is kept until the instance is
//! destroyed (`wasm-state instances destroy customers`).

use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use wasm_state_sdk::State;

/// The instance-state map holding every customer, by phone number.
const MAP: &str = "customers";

const USAGE: &str = "\
usage:
  customers add <phone> <name> [email]   store a customer under their phone number
  customers lookup <phone>               print the name of the customer with that number
  customers list                         print every customer (phone, name, email)

Phone numbers may contain spaces, dashes, dots and parentheses; they are
stored without them, e.g. '+44 7700 900001' as +447700900001.";

/// One customer, stored as JSON in the map (VCR's `JSON.stringify(customer)`).
#[derive(Debug, Serialize, Deserialize)]
struct Customer {
    phone: String,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
}

/// Why a command failed, and so which message it ends with. Every failure
/// exits with code 1: a WASI 0.2 command can only exit with success or
/// failure (`wasi:cli/exit` takes a `result`), so the message tells them apart.
enum Failure {
    /// Wrong arguments: the usage follows.
    Usage(String),
    /// A lookup of an unknown number.
    UnknownPhone(String),
    /// The state host refused or failed.
    State(wasm_state_sdk::Error),
}

impl From<wasm_state_sdk::Error> for Failure {
    fn from(e: wasm_state_sdk::Error) -> Self {
        Failure::State(e)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(why)) => {
            eprintln!("customers: {why}\n\n{USAGE}");
            ExitCode::FAILURE
        }
        Err(Failure::UnknownPhone(phone)) => {
            eprintln!(
                "customers: no customer with phone number {phone}; \
                 add one with `customers add {phone} <name>` or see `customers list`"
            );
            ExitCode::FAILURE
        }
        Err(Failure::State(e)) => {
            eprintln!("customers: the state operation failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), Failure> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["add", phone, name] => add(phone, name, None),
        ["add", phone, name, email] => add(phone, name, Some(email)),
        ["add", ..] => Err(Failure::Usage(
            "`add` takes a phone number, a name and optionally an email \
             (quote a name with spaces: 'Ada Lovelace')"
                .into(),
        )),
        ["lookup", phone] => lookup(phone),
        ["lookup", ..] => Err(Failure::Usage("`lookup` takes one phone number".into())),
        ["list"] => list(),
        ["list", ..] => Err(Failure::Usage("`list` takes no arguments".into())),
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        [] => Err(Failure::Usage("say what to do: add, lookup or list".into())),
        [other, ..] => Err(Failure::Usage(format!("unknown command {other:?}"))),
    }
}

/// The phone number without spaces, dashes, dots and parentheses, if what
/// remains is an optional `+` and 3 to 20 digits.
fn normalize_phone(raw: &str) -> Result<String, Failure> {
    let phone: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = phone.strip_prefix('+').unwrap_or(&phone);
    if (3..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(phone)
    } else {
        Err(Failure::Usage(format!(
            "{raw:?} is not a phone number: expected digits with an optional leading +, \
             e.g. +447700900001"
        )))
    }
}

/// VCR's `instanceState.mapSet("customers", { [customer.phone]: JSON.stringify(customer) })`.
fn add(phone: &str, name: &str, email: Option<&str>) -> Result<(), Failure> {
    let phone = normalize_phone(phone)?;
    let name = name.trim();
    if name.is_empty() {
        return Err(Failure::Usage(
            "the customer's name must not be empty".into(),
        ));
    }
    if let Some(email) = email
        && !email.contains('@')
    {
        return Err(Failure::Usage(format!(
            "{email:?} is not an email address (no @)"
        )));
    }
    let customer = Customer {
        phone: phone.clone(),
        name: name.to_owned(),
        email: email.map(str::to_owned),
    };
    let added = State::instance().map_set(MAP, [(phone.as_str(), &customer)])?;
    let verb = if added == 1 { "added" } else { "updated" };
    println!("{verb} customer {phone} ({name})");
    Ok(())
}

/// VCR's `instanceState.mapGetValue("customers", number)`, then `customer.name`.
fn lookup(phone: &str) -> Result<(), Failure> {
    let phone = normalize_phone(phone)?;
    match State::instance().map_get_value::<Customer>(MAP, &phone)? {
        Some(customer) => {
            println!("{}", customer.name);
            Ok(())
        }
        None => Err(Failure::UnknownPhone(phone)),
    }
}

/// Every customer, in phone-number order, paging through the map.
fn list() -> Result<(), Failure> {
    let state = State::instance();
    let mut n = 0;
    for entry in state.map_scan::<Customer>(MAP, None, 100) {
        let (phone, customer) = entry?;
        println!(
            "{phone}\t{}\t{}",
            customer.name,
            customer.email.as_deref().unwrap_or("-")
        );
        n += 1;
    }
    if n == 0 {
        eprintln!("no customers yet; add one with `customers add <phone> <name> [email]`");
    }
    Ok(())
}
