//! Command-line helpers shared by the examples (each includes this file by path).

use std::str::FromStr;

/// The value that follows `flag`, parsed; the error names the flag.
pub fn value<T: FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
    v.parse()
        .map_err(|_| format!("{flag}: {v:?} is not a valid value"))
}

/// Runs `parse` over this process's arguments; on an error prints `{name}: {error}` and
/// `usage`, and exits with status 2.
pub fn parse_or_exit<O>(
    name: &str,
    usage: &str,
    parse: impl FnOnce(std::iter::Skip<std::env::Args>) -> Result<O, String>,
) -> O {
    parse(std::env::args().skip(1)).unwrap_or_else(|e| {
        eprintln!("{name}: {e}\n\n{usage}");
        std::process::exit(2)
    })
}
