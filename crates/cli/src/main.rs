use std::process::ExitCode;

fn main() -> ExitCode {
    natter_client_core::init_crypto();
    match natter_cli::run() {
        Ok(code) => code,
        Err(err) => natter_cli::report(&err),
    }
}
