//! `wasm-state`: run WebAssembly components with durable state, and inspect
//! or administer that state.

mod args;
mod client;
mod inspect;
mod manage;
mod manifest;
mod run;
mod scaffold;
mod serve;
mod settings;
mod transfer;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// mimalloc: measured against glibc's malloc on 64 concurrent durable sets
/// (`benches/store.rs`), a group commit takes ~20% less time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WASM_STATE_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,wasm_state::access=info")
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(a) => run::run(&cli.global, a).await,
            Command::Serve(a) => serve::serve(&cli.global, a)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::State(a) => inspect::state(&cli.global, a)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Instances(a) => manage::instances(&cli.global, a)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Sessions(a) => manage::sessions(&cli.global, a)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::New(a) => scaffold::new(a).map(|()| ExitCode::SUCCESS),
            Command::Call(a) => run::call(&cli.global, a).await,
            Command::Export(a) => transfer::export(&cli.global, a)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Import { file } => transfer::import(&cli.global, file)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Apps(a) => manage::apps(&cli.global, a)
                .await
                .map(|()| ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
