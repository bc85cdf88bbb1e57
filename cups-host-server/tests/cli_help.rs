//! `--help` works for every subcommand and shows examples; bad usage exits 2.

mod cli_support;

use cli_support::{run_env, workdir};

const SUBCOMMANDS: &[&[&str]] = &[
    &[],
    &["serve"],
    &["init"],
    &["gateway"],
    &["gateway", "add"],
    &["gateway", "list"],
    &["gateway", "show"],
    &["gateway", "set"],
    &["gateway", "renew"],
    &["gateway", "remove"],
    &["gateway", "export"],
    &["firmware"],
    &["firmware", "add"],
    &["firmware", "list"],
    &["firmware", "remove"],
    &["plan"],
    &["config"],
];

#[test]
fn help_of_every_subcommand() {
    let dir = workdir();
    for sub in SUBCOMMANDS {
        for flag in ["--help", "-h"] {
            let mut args = sub.to_vec();
            args.push(flag);
            let out = run_env(dir.path(), &args, &[]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{args:?}: {}", out.status);
            assert!(stdout.contains("Usage: cups-server"), "{args:?}: {stdout}");
            assert!(stdout.contains("Examples:"), "{args:?} has no examples");
        }
    }
    // Nothing was created by asking for help.
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

#[test]
fn version_and_usage_errors() {
    let dir = workdir();
    let out = run_env(dir.path(), &["--version"], &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cups-server "));
    for args in [
        &["frobnicate"][..],
        &["gateway", "add"],
        &["gateway", "add", "0016c001ff10a235", "--tc", "nope"],
        &["gateway", "set", "0016c001ff10a235"],
        &[
            "gateway",
            "set",
            "::1",
            "--tc-uri",
            "wss://a:1",
            "--clear-tc-uri",
        ],
        &["gateway", "set", "::1", "--tc-uri", ""],
        &["gateway", "renew"],
        &["gateway", "renew", "::1", "--all"],
        &["serve", "--listen", "not-an-address"],
        &["--store", "ftp", "config"],
    ] {
        let out = run_env(dir.path(), args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
