//! The zips scripts/package-lambdas makes run on `provided.al2023`: one executable `bootstrap`
//! each, x86-64, asking for no glibc newer than Amazon Linux 2023's 2.34 and for no shared
//! library outside glibc's own and libgcc_s (plus OpenSSL 3, which AL2023 ships, should a
//! dependency ever link it).

use std::path::Path;
use std::process::Command;

use marquee_tests::lambda_package_dir;

/// Amazon Linux 2023's glibc.
const MAX_GLIBC: (u32, u32) = (2, 34);

/// Shared libraries every AL2023 image has (glibc, libgcc, OpenSSL 3).
const AL2023_LIBRARIES: [&str; 9] = [
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
    "libssl.so.3",
    "libcrypto.so.3",
];

fn output(program: &str, args: &[&str], file: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Every `GLIBC_x.y[.z]` version the binary's dynamic symbols name, as (major, minor).
fn glibc_versions(objdump_t: &str) -> Vec<(u32, u32)> {
    objdump_t
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|version| {
            let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .collect()
}

/// The libraries the dynamic section names as NEEDED.
fn needed(objdump_p: &str) -> Vec<String> {
    objdump_p
        .lines()
        .filter_map(|line| line.trim().strip_prefix("NEEDED"))
        .map(|name| name.trim().to_string())
        .collect()
}

#[test]
fn each_zip_is_one_bootstrap_that_runs_on_amazon_linux_2023() {
    for function in ["projector", "scheduler"] {
        let zip = lambda_package_dir().join(format!("{function}.zip"));
        assert!(
            zip.exists(),
            "{} is missing: run scripts/package-lambdas (scripts/test does)",
            zip.display()
        );
        // Names and Unix modes of the entries, read with Python's zipfile (no zip crate needed).
        let listing = output(
            "python3",
            &[
                "-c",
                "import sys, zipfile\nfor i in zipfile.ZipFile(sys.argv[1]).infolist(): print(i.filename, oct(i.external_attr >> 16))",
            ],
            &zip,
        );
        assert_eq!(listing.trim(), "bootstrap 0o100755", "{function}.zip");

        let dir = tempfile::tempdir().unwrap();
        let extracted = Command::new("python3")
            .args(["-m", "zipfile", "-e"])
            .arg(&zip)
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(extracted.success());
        let bootstrap = dir.path().join("bootstrap");

        let header = output("objdump", &["-f"], &bootstrap);
        assert!(header.contains("elf64-x86-64"), "{function}: {header}");
        let versions = glibc_versions(&output("objdump", &["-T"], &bootstrap));
        assert!(
            !versions.is_empty(),
            "{function}: no glibc symbol versions found"
        );
        let newest = versions.iter().max().unwrap();
        assert!(
            *newest <= MAX_GLIBC,
            "{function} needs GLIBC_{}.{}, newer than Amazon Linux 2023's 2.34",
            newest.0,
            newest.1
        );
        for library in needed(&output("objdump", &["-p"], &bootstrap)) {
            assert!(
                AL2023_LIBRARIES.contains(&library.as_str()),
                "{function} needs {library}, which Amazon Linux 2023 may not have"
            );
        }
    }
}

#[test]
fn the_checks_read_objdump_as_it_prints() {
    let dynamic =
        "0000000000000000      DF *UND*\t0000000000000000 (GLIBC_2.34) __libc_start_main\n\
                   0000000000000000      DF *UND*\t0000000000000000  GLIBC_2.2.5 memcpy\n\
                   0000000000000000      DF *UND*\t0000000000000000 (GLIBC_PRIVATE) _dl_x\n";
    assert_eq!(glibc_versions(dynamic), vec![(2, 34), (2, 2)]);
    assert!(glibc_versions("0 DF *UND* (GLIBC_2.38) __isoc23_strtol")
        .iter()
        .any(|v| *v > MAX_GLIBC));
    let dynamic_section = "Dynamic Section:\n  NEEDED               libgcc_s.so.1\n  NEEDED               libc.so.6\n";
    assert_eq!(needed(dynamic_section), vec!["libgcc_s.so.1", "libc.so.6"]);
}
