//! Asking apt which package version to use, its SHA256, and downloading it.
//!
//! Versions and checksums come from apt's package lists (`apt-cache policy`,
//! `apt-cache show NAME=VERSION`), which apt has already authenticated
//! against the archive's signed Release file; `apt-get download` fetches the
//! `.deb` from the configured mirror. The download is checked against the
//! listed SHA256 before it is used or cached.

use crate::Error;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What to do when apt cannot answer.
const HINT_UPDATE: &str = "run `apt-get update` first (as root), so apt's package lists exist \
                           and are current";

/// A package version as apt's lists describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// Package name (`linux-image-6.1.0-56-amd64`).
    pub name: String,
    /// Version (`6.1.192-2`, may have an epoch: `1:1.35.0-4`).
    pub version: String,
    /// Architecture (`amd64`).
    pub arch: String,
    /// Lower-case hex SHA256 of the `.deb`: every value apt lists for this
    /// name and version (normally one).
    pub sha256: Vec<String>,
    /// Size of the `.deb` in bytes, if listed.
    pub size: Option<u64>,
    /// The `Depends` field.
    pub depends: String,
}

impl Package {
    /// `name=version`, as apt takes it.
    pub fn spec(&self) -> String {
        format!("{}={}", self.name, self.version)
    }

    /// A file-name-safe `name_version_arch` (`:` escaped as `%3a`, as apt does).
    pub fn file_stem(&self) -> String {
        format!(
            "{}_{}_{}",
            self.name,
            self.version.replace(':', "%3a"),
            self.arch
        )
    }
}

fn run(program: &str, args: &[&str], cwd: Option<&Path>) -> Result<String, Error> {
    let command = format!("{program} {}", args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let out = cmd.output().map_err(|e| Error::Apt {
        command: command.clone(),
        detail: format!("cannot run it: {e}"),
        hint: "this needs apt (Debian or a derivative)",
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // apt-cache exits 0 with "E: ..." for some lookups that fail.
    let error_line = stderr.lines().find(|l| l.starts_with("E:"));
    if !out.status.success() || error_line.is_some() {
        return Err(Error::Apt {
            command,
            detail: error_line
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}: {}", out.status, stderr.trim())),
            hint: HINT_UPDATE,
        });
    }
    Ok(stdout)
}

/// The `Candidate:` version in `apt-cache policy` output, if any.
pub fn parse_candidate(policy: &str) -> Option<String> {
    policy
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "(none)")
        .map(str::to_string)
}

/// Splits control-file text (`apt-cache show` output) into stanzas of
/// `(field, value)`; continuation lines are appended to the previous value.
pub fn parse_stanzas(text: &str) -> Vec<Vec<(String, String)>> {
    let mut stanzas = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                stanzas.push(std::mem::take(&mut cur));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = cur.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            cur.push((k.to_string(), v.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        stanzas.push(cur);
    }
    stanzas
}

fn field<'a>(stanza: &'a [(String, String)], name: &str) -> Option<&'a str> {
    stanza
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The package `name` at `version` from `apt-cache show` output.
pub fn parse_package(show: &str, name: &str, version: &str) -> Option<Package> {
    let mut found: Option<Package> = None;
    for stanza in parse_stanzas(show) {
        if field(&stanza, "Package") != Some(name) || field(&stanza, "Version") != Some(version) {
            continue;
        }
        let Some(sha) = field(&stanza, "SHA256") else {
            continue;
        };
        let sha = sha.to_ascii_lowercase();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        match found.as_mut() {
            Some(p) => {
                if !p.sha256.contains(&sha) {
                    p.sha256.push(sha);
                }
            }
            None => {
                found = Some(Package {
                    name: name.into(),
                    version: version.into(),
                    arch: field(&stanza, "Architecture").unwrap_or("amd64").into(),
                    sha256: vec![sha],
                    size: field(&stanza, "Size").and_then(|s| s.parse().ok()),
                    depends: field(&stanza, "Depends").unwrap_or("").into(),
                })
            }
        }
    }
    found
}

/// The first dependency in a `Depends` field whose name starts with
/// `prefix`, with its version if pinned with `(= VERSION)`.
pub fn parse_dependency(depends: &str, prefix: &str) -> Option<(String, Option<String>)> {
    depends
        .split([',', '|'])
        .map(str::trim)
        .find(|d| d.starts_with(prefix))
        .map(|d| {
            let name = d.split([' ', '(']).next().unwrap_or(d).to_string();
            let pinned = d
                .split_once("(=")
                .and_then(|(_, rest)| rest.split(')').next())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty());
            (name, pinned)
        })
}

/// The version apt would install for `name` (its candidate).
pub fn candidate(name: &str) -> Result<String, Error> {
    let policy = run("apt-cache", &["policy", name], None)?;
    parse_candidate(&policy).ok_or_else(|| Error::Apt {
        command: format!("apt-cache policy {name}"),
        detail: format!("no candidate version of {name}"),
        hint: HINT_UPDATE,
    })
}

/// `name` at `version` as apt's lists describe it.
pub fn show(name: &str, version: &str) -> Result<Package, Error> {
    let spec = format!("{name}={version}");
    let text = run("apt-cache", &["show", &spec], None)?;
    parse_package(&text, name, version).ok_or_else(|| Error::Apt {
        command: format!("apt-cache show {spec}"),
        detail: format!("no stanza with a SHA256 for {spec}"),
        hint: HINT_UPDATE,
    })
}

/// The candidate of `name`.
pub fn resolve(name: &str) -> Result<Package, Error> {
    show(name, &candidate(name)?)
}

/// The versioned kernel package a meta-package (`linux-image-amd64`) depends
/// on, at the version it pins.
pub fn resolve_kernel(meta: &str) -> Result<Package, Error> {
    let m = resolve(meta)?;
    let (name, pinned) =
        parse_dependency(&m.depends, "linux-image-").ok_or_else(|| Error::Apt {
            command: format!("apt-cache show {}", m.spec()),
            detail: format!("{} depends on no linux-image-* package", m.spec()),
            hint: "name a kernel meta-package such as linux-image-amd64",
        })?;
    match pinned {
        Some(v) => show(&name, &v),
        None => resolve(&name),
    }
}

/// Lower-case hex SHA256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, Error> {
    let io = |error| Error::Io {
        what: "cannot read",
        path: path.to_path_buf(),
        error,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Lower-case hex SHA256 of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `path` against the SHA256 values apt lists for `pkg`; a mismatch
/// is [`Error::Checksum`].
pub fn verify(path: &Path, pkg: &Package) -> Result<(), Error> {
    let actual = sha256_file(path)?;
    if pkg.sha256.contains(&actual) {
        Ok(())
    } else {
        Err(Error::Checksum {
            file: path.to_path_buf(),
            package: pkg.spec(),
            expected: pkg.sha256.clone(),
            actual,
        })
    }
}

/// The verified `.deb` of `pkg` in `dir` (`NAME_VERSION_ARCH.deb`),
/// downloaded with `apt-get download` unless a copy with the right SHA256 is
/// already there. A download with the wrong checksum is deleted and is an
/// error.
pub fn download(pkg: &Package, dir: &Path) -> Result<PathBuf, Error> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |error| Error::Io { what, path, error }
    };
    std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    let deb = dir.join(format!("{}.deb", pkg.file_stem()));
    if deb.is_file() {
        match verify(&deb, pkg) {
            Ok(()) => return Ok(deb),
            Err(e) => {
                crate::progress(&format!(
                    "cached {} is bad ({e}); downloading again",
                    pkg.spec()
                ));
                std::fs::remove_file(&deb).map_err(io("cannot remove", &deb))?;
            }
        }
    }
    let size = pkg
        .size
        .map(|s| format!(" ({:.1} MB)", s as f64 / 1e6))
        .unwrap_or_default();
    crate::progress(&format!("downloading {}{size} with apt-get", pkg.spec()));
    // A private directory per download, so concurrent builds do not clash.
    let tmp = dir.join(format!(
        ".download-{}-{}",
        std::process::id(),
        crate::unique()
    ));
    std::fs::create_dir_all(&tmp).map_err(io("cannot create", &tmp))?;
    let result = (|| {
        // As root, apt drops privileges to `_apt`, which cannot write into
        // an arbitrary directory; keep root for this download (no effect
        // when not root).
        run(
            "apt-get",
            &[
                "download",
                "-q",
                "-o",
                "APT::Sandbox::User=root",
                &pkg.spec(),
            ],
            Some(&tmp),
        )
        .map_err(|e| match e {
            Error::Apt {
                command, detail, ..
            } => Error::Apt {
                command,
                detail,
                hint: "apt-get download failed: run `apt-get update` first, and check that \
                       the Debian mirror in /etc/apt/sources.list is reachable",
            },
            other => other,
        })?;
        let got: Vec<PathBuf> = std::fs::read_dir(&tmp)
            .map_err(io("cannot list", &tmp))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        let [file] = got.as_slice() else {
            return Err(Error::Apt {
                command: format!("apt-get download {}", pkg.spec()),
                detail: format!(
                    "expected one .deb in {}, found {}",
                    tmp.display(),
                    got.len()
                ),
                hint: HINT_UPDATE,
            });
        };
        verify(file, pkg)?;
        std::fs::rename(file, &deb).map_err(io("cannot move the download to", &deb))?;
        Ok(deb.clone())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    let deb = result?;
    crate::progress(&format!(
        "verified {} (sha256 {})",
        deb.display(),
        pkg.sha256[0]
    ));
    Ok(deb)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: &str = "\
Package: linux-image-amd64
Source: linux-signed-amd64 (6.1.192+2)
Version: 6.1.192-2
Architecture: amd64
Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)
Description: Linux for 64-bit PCs (meta-package)
 This package depends on the latest Linux kernel
 and modules for use on PCs.
Size: 1484
SHA256: A86E2049672F52354C4536A089203B6C82639420424D31C91CF31A181FD4D8F1

Package: linux-image-amd64
Version: 6.1.176-1
Architecture: amd64
Depends: linux-image-6.1.0-50-amd64 (= 6.1.176-1)
SHA256: 0000000000000000000000000000000000000000000000000000000000000000
";

    #[test]
    fn parses_policy() {
        let policy = "linux-image-amd64:\n  Installed: (none)\n  Candidate: 6.1.192-2\n  \
                      Version table:\n";
        assert_eq!(parse_candidate(policy).as_deref(), Some("6.1.192-2"));
        assert_eq!(parse_candidate("x:\n  Candidate: (none)\n"), None);
        assert_eq!(parse_candidate(""), None);
    }

    #[test]
    fn parses_show_output() {
        let p = parse_package(SHOW, "linux-image-amd64", "6.1.192-2").unwrap();
        assert_eq!(
            p.sha256,
            ["a86e2049672f52354c4536a089203b6c82639420424d31c91cf31a181fd4d8f1"]
        );
        assert_eq!(p.size, Some(1484));
        assert_eq!(p.spec(), "linux-image-amd64=6.1.192-2");
        assert_eq!(
            parse_dependency(&p.depends, "linux-image-"),
            Some((
                "linux-image-6.1.0-56-amd64".into(),
                Some("6.1.192-2".into())
            ))
        );
        assert!(parse_package(SHOW, "linux-image-amd64", "9").is_none());
        assert!(parse_package("Package: x\nVersion: 1\nSHA256: zz\n", "x", "1").is_none());
        let stanzas = parse_stanzas(SHOW);
        assert_eq!(stanzas.len(), 2);
        assert!(field(&stanzas[0], "description")
            .unwrap()
            .ends_with("modules for use on PCs."));
    }

    #[test]
    fn parses_dependencies() {
        assert_eq!(
            parse_dependency("libc6 (>= 2.34), linux-image-6.1.0-9-amd64", "linux-image-"),
            Some(("linux-image-6.1.0-9-amd64".into(), None))
        );
        assert_eq!(parse_dependency("libc6", "linux-image-"), None);
    }

    #[test]
    fn file_stem_escapes_epochs() {
        let p = Package {
            name: "busybox-static".into(),
            version: "1:1.35.0-4+deb12u1+b1".into(),
            arch: "amd64".into(),
            sha256: vec![],
            size: None,
            depends: String::new(),
        };
        assert_eq!(
            p.file_stem(),
            "busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64"
        );
    }

    #[test]
    fn detects_checksum_mismatch() {
        let dir = std::env::temp_dir().join(format!("appvm-images-sum-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("x.deb");
        std::fs::write(&file, b"abc").unwrap();
        let good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let mut pkg = Package {
            name: "x".into(),
            version: "1".into(),
            arch: "amd64".into(),
            sha256: vec![good.into()],
            size: None,
            depends: String::new(),
        };
        verify(&file, &pkg).unwrap();
        pkg.sha256 = vec!["00".repeat(32)];
        let err = verify(&file, &pkg).unwrap_err();
        assert!(
            matches!(&err, Error::Checksum { actual, .. } if actual == good),
            "{err}"
        );
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        // A cached copy with the wrong checksum is thrown away, not used:
        // `download` then needs apt, so only check the verify step here.
        std::fs::write(&file, b"abd").unwrap();
        pkg.sha256 = vec![good.into()];
        assert!(verify(&file, &pkg).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
