//! Command-line helpers shared by the examples (each includes this file by path).

use std::str::FromStr;

/// Calls `set(flag, next)` for each flag of `args` in turn; `next.value()` parses the
/// argument after the flag (an error names the flag). `set` returns `Ok(false)` for a flag
/// it does not know, which is an error naming it; `-h` and `--help` print `usage` and exit.
pub fn each_flag(
    args: impl IntoIterator<Item = String>,
    usage: &str,
    mut set: impl FnMut(&str, &mut Next<'_>) -> Result<bool, String>,
) -> Result<(), String> {
    let mut argv = args.into_iter();
    while let Some(flag) = argv.next() {
        if flag == "-h" || flag == "--help" {
            print!("{usage}");
            std::process::exit(0)
        }
        let mut next = Next {
            flag: &flag,
            argv: &mut argv,
        };
        if !set(&flag, &mut next)? {
            return Err(format!("unknown flag {flag:?}"));
        }
    }
    Ok(())
}

/// The arguments after a flag, for [`each_flag`]'s callback.
pub struct Next<'a> {
    flag: &'a str,
    argv: &'a mut dyn Iterator<Item = String>,
}

impl Next<'_> {
    /// The argument after the flag, parsed.
    pub fn value<T: FromStr>(&mut self) -> Result<T, String> {
        value(self.flag, self.argv.next())
    }
}

/// The value that follows `flag`, parsed; the error names the flag.
fn value<T: FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
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
