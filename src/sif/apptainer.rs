//! What apptainer adds to every rootfs it builds from an OCI image (spec §1.5, §2): the
//! `/.singularity.d` metadata directory (runscript from ENTRYPOINT/CMD, environment from
//! the image's `Env`, action scripts, labels, deffile), the mount-point directories, the
//! compatibility symlinks at `/`, and empty `etc/hosts` and `etc/resolv.conf`.
//!
//! The scripts are written here from what they must do; apptainer itself runs its own
//! built-in action script and only reads `env/*.sh` and `runscript` from the image.

use std::collections::BTreeMap;

use super::archive::RunConfig;
use super::tree::{Inode, Kind, NodeId, Tree, ROOT};

/// Where the metadata directory lives.
pub const SINGULARITY_D: &str = ".singularity.d";
/// The env script converted from the image's `Env`.
pub const DOCKER_ENV_SCRIPT: &str = "/.singularity.d/env/10-docker2singularity.sh";

/// Escapes `\ " ` $` for a double-quoted shell string.
fn escape_double(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '"' | '`' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// apptainer's q(list): each element escaped and double-quoted, joined by spaces, then
/// every `'` replaced by `'"'"'` so the result fits in single quotes.
fn quote_list(list: &[String]) -> String {
    list.iter()
        .map(|e| format!("\"{}\"", escape_double(e)))
        .collect::<Vec<_>>()
        .join(" ")
        .replace('\'', "'\"'\"'")
}

/// One argument single-quoted for `set --`.
fn single_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

/// `/.singularity.d/runscript` for an image's ENTRYPOINT and CMD: Docker's rules, via
/// the `eval "set ${SINGULARITY_OCI_RUN}"` line apptainer recognises, or without any
/// evaluation when `SINGULARITY_NO_EVAL` is set.
#[must_use]
pub fn runscript(run: &RunConfig) -> String {
    let entrypoint = run.entrypoint.clone().unwrap_or_default();
    let cmd = run.cmd.clone().unwrap_or_default();
    let mut s = String::from("#!/bin/sh\n");
    s.push_str(&format!("OCI_ENTRYPOINT='{}'\n", quote_list(&entrypoint)));
    s.push_str(&format!("OCI_CMD='{}'\n\n", quote_list(&cmd)));

    s.push_str(
        "# SINGULARITY_NO_EVAL: build the command Docker's way, without shell evaluation.\n",
    );
    s.push_str("if [ -n \"${SINGULARITY_NO_EVAL:-}\" ]; then\n");
    if !cmd.is_empty() {
        s.push_str("    if [ $# -eq 0 ]; then\n");
        for arg in cmd.iter().rev() {
            s.push_str(&format!("        set -- {} \"$@\"\n", single_quote(arg)));
        }
        s.push_str("    fi\n");
    }
    for arg in entrypoint.iter().rev() {
        s.push_str(&format!("    set -- {} \"$@\"\n", single_quote(arg)));
    }
    s.push_str("    exec \"$@\"\nfi\n\n");

    s.push_str(
        r#"# Arguments given to the container, each double-quoted for the eval below.
CMDLINE_ARGS=""
for arg in "$@"; do
    CMDLINE_ARGS="${CMDLINE_ARGS} \"${arg}\""
done

if [ -n "$OCI_ENTRYPOINT" ]; then
    # ENTRYPOINT, then the arguments or else CMD.
    if [ $# -gt 0 ]; then
        SINGULARITY_OCI_RUN="${OCI_ENTRYPOINT} ${CMDLINE_ARGS}"
    else
        SINGULARITY_OCI_RUN="${OCI_ENTRYPOINT} ${OCI_CMD}"
    fi
elif [ $# -gt 0 ]; then
    # No ENTRYPOINT: the arguments replace CMD.
    SINGULARITY_OCI_RUN="${CMDLINE_ARGS}"
elif [ -n "$OCI_CMD" ]; then
    SINGULARITY_OCI_RUN="${OCI_CMD}"
else
    echo "This image has neither ENTRYPOINT nor CMD: give a command to run." >&2
    exit 1
fi

# Let the shell evaluate the quoted words, then run them as the container's process.
eval "set ${SINGULARITY_OCI_RUN}"
exec "$@"
"#,
    );
    s
}

/// `10-docker2singularity.sh` for an image's `Env`: the image's PATH replaces the host's,
/// every other variable keeps a value the host already set.
#[must_use]
pub fn env_script(env: &[String]) -> String {
    let mut s = String::from("#!/bin/sh\n");
    for entry in env {
        let (name, value) = match entry.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (entry.as_str(), None),
        };
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            log::warn!("image environment variable `{name}` is not a shell name; skipped");
            continue;
        }
        match value {
            None => s.push_str(&format!("export {name}=\"${{{name}:-}}\"\n")),
            Some(v) if name == "PATH" => {
                s.push_str(&format!("export PATH=\"{}\"\n", escape_double(v)));
            }
            Some(v) => s.push_str(&format!(
                "export {name}=\"${{{name}:-\"{}\"}}\"\n",
                escape_double(v)
            )),
        }
    }
    s
}

/// `labels.json`: sorted keys, tab indent, no trailing newline (Go's `MarshalIndent`).
#[must_use]
pub fn labels_json(labels: &BTreeMap<String, String>) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serialising a map of strings into a Vec cannot fail.
    let _ = serde::Serialize::serialize(labels, &mut ser);
    String::from_utf8_lossy(&out).into_owned()
}

const ACTION_SOURCE_ENV: &str = r#"for script in /.singularity.d/env/*.sh; do
    if [ -f "$script" ]; then
        . "$script"
    fi
done
"#;

fn action(body: &str) -> String {
    format!("#!/bin/sh\n{ACTION_SOURCE_ENV}\n{body}")
}

/// The fixed files of `/.singularity.d`: (path under it, contents, mode).
fn stock_files() -> Vec<(&'static str, String, u16)> {
    vec![
        ("actions/exec", action("exec \"$@\"\n"), 0o755),
        (
            "actions/run",
            action(
                r#"if [ -x /.singularity.d/runscript ]; then
    exec /.singularity.d/runscript "$@"
fi
echo "No runscript in this container; running /bin/sh" >&2
exec /bin/sh "$@"
"#,
            ),
            0o755,
        ),
        (
            "actions/shell",
            action(
                r#"if [ -n "${SINGULARITY_SHELL:-}" ] && [ -x "${SINGULARITY_SHELL}" ]; then
    exec "${SINGULARITY_SHELL}" "$@"
fi
if [ -x /bin/bash ]; then
    exec /bin/bash --norc "$@"
fi
exec /bin/sh "$@"
"#,
            ),
            0o755,
        ),
        (
            "actions/start",
            action(
                r#"if [ -x /.singularity.d/startscript ]; then
    exec /.singularity.d/startscript "$@"
fi
"#,
            ),
            0o755,
        ),
        (
            "actions/test",
            action(
                r#"if [ -x /.singularity.d/test ]; then
    exec /.singularity.d/test "$@"
fi
echo "No test script in this container" >&2
exit 0
"#,
            ),
            0o755,
        ),
        (
            "env/01-base.sh",
            "#!/bin/sh\n# Base environment of the container; sourced first.\n".into(),
            0o755,
        ),
        (
            "env/90-environment.sh",
            "#!/bin/sh\n# The %environment section of a definition file goes here.\n".into(),
            0o755,
        ),
        ("env/94-appsbase.sh", String::new(), 0o755),
        (
            "env/95-apps.sh",
            r#"#!/bin/sh
# SCIF apps: with SINGULARITY_APPNAME set, source that app's environment.
if [ -n "${SINGULARITY_APPNAME:-}" ]; then
    for script in "/scif/apps/${SINGULARITY_APPNAME}/scif/env/"*.sh; do
        if [ -f "$script" ]; then
            . "$script"
        fi
    done
    SCIF_APPNAME="${SINGULARITY_APPNAME}"
    export SCIF_APPNAME
fi
"#
            .into(),
            0o755,
        ),
        (
            "env/99-base.sh",
            r#"#!/bin/sh
# Libraries bound in by the runtime, and the prompt.
if [ -z "${LD_LIBRARY_PATH:-}" ]; then
    LD_LIBRARY_PATH="/.singularity.d/libs"
else
    LD_LIBRARY_PATH="${LD_LIBRARY_PATH}:/.singularity.d/libs"
fi
PS1="Singularity> "
export LD_LIBRARY_PATH PS1
"#
            .into(),
            0o755,
        ),
        (
            "env/99-runtimevars.sh",
            r#"#!/bin/sh
# PATH changes asked for at run time (--env PREPEND_PATH / APPEND_PATH / PATH).
if [ -n "${SING_USER_DEFINED_PREPEND_PATH:-}" ]; then
    PATH="${SING_USER_DEFINED_PREPEND_PATH}:${PATH}"
fi
if [ -n "${SING_USER_DEFINED_APPEND_PATH:-}" ]; then
    PATH="${PATH}:${SING_USER_DEFINED_APPEND_PATH}"
fi
if [ -n "${SING_USER_DEFINED_PATH:-}" ]; then
    PATH="${SING_USER_DEFINED_PATH}"
fi
unset SING_USER_DEFINED_PREPEND_PATH SING_USER_DEFINED_APPEND_PATH SING_USER_DEFINED_PATH
export PATH
"#
            .into(),
            0o755,
        ),
        ("startscript", "#!/bin/sh\n".into(), 0o755),
    ]
}

/// The generated files apptainer records in `inspect-metadata.json` too.
#[derive(Clone, Debug)]
pub struct Metadata {
    pub deffile: String,
    pub runscript: String,
    pub env_script: String,
    pub labels: BTreeMap<String, String>,
    pub startscript: String,
}

impl Metadata {
    /// Builds the metadata for an image's run config, its final labels and deffile.
    #[must_use]
    pub fn new(run: &RunConfig, labels: BTreeMap<String, String>, deffile: String) -> Self {
        Self {
            deffile,
            runscript: runscript(run),
            env_script: env_script(run.env.as_deref().unwrap_or_default()),
            labels,
            startscript: "#!/bin/sh\n".into(),
        }
    }

    /// The `inspect-metadata.json` SIF object.
    #[must_use]
    pub fn inspect_json(&self) -> Vec<u8> {
        let doc = serde_json::json!({
            "data": {
                "attributes": {
                    "deffile": self.deffile,
                    "environment": { DOCKER_ENV_SCRIPT: self.env_script },
                    "labels": self.labels,
                    "runscript": self.runscript,
                    "startscript": self.startscript,
                }
            },
            "type": "container"
        });
        serde_json::to_vec(&doc).unwrap_or_default()
    }
}

/// Walks `path` lexically from the root, creating missing directories (`mode`, `time`).
/// `None` when a component exists and is not a directory (left alone, with a warning).
fn ensure_dir(tree: &mut Tree, path: &str, mode: u16, time: i64) -> Option<NodeId> {
    let mut cur = ROOT;
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        cur = match tree.child(cur, comp.as_bytes()) {
            Some(n) if tree.node_inode(n).is_dir() => n,
            Some(_) => {
                log::warn!("`/{path}`: `{comp}` exists and is not a directory; left as it is");
                return None;
            }
            None => tree.insert(cur, comp.as_bytes(), Inode::dir(mode, time)),
        };
    }
    Some(cur)
}

fn put_file(tree: &mut Tree, path: &str, bytes: &[u8], mode: u16, time: i64) {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    if let Some(d) = ensure_dir(tree, dir, 0o755, time) {
        tree.insert(
            d,
            name.as_bytes(),
            Inode::inline_file(bytes.to_vec(), mode, time),
        );
    }
}

/// Adds apptainer's base environment and `meta` to `tree`, every new entry stamped
/// `time`.
pub fn add_to_tree(tree: &mut Tree, meta: &Metadata, time: i64) {
    for dir in [
        "dev", "proc", "sys", "tmp", "home", "root", "var/tmp", "etc",
    ] {
        ensure_dir(tree, dir, 0o755, time);
    }
    for dir in ["libs", "env", "actions"] {
        ensure_dir(tree, &format!("{SINGULARITY_D}/{dir}"), 0o755, time);
    }
    for (name, target) in [
        (".exec", ".singularity.d/actions/exec"),
        (".run", ".singularity.d/actions/run"),
        (".shell", ".singularity.d/actions/shell"),
        (".test", ".singularity.d/actions/test"),
        ("singularity", ".singularity.d/runscript"),
        ("environment", ".singularity.d/env/90-environment.sh"),
    ] {
        if tree
            .child(ROOT, name.as_bytes())
            .is_some_and(|n| tree.node_inode(n).is_dir())
        {
            log::warn!("`/{name}` is a directory in the image; replaced by apptainer's symlink");
        }
        tree.insert(
            ROOT,
            name.as_bytes(),
            Inode::symlink(target.as_bytes(), time),
        );
    }
    put_file(tree, "etc/hosts", b"", 0o644, time);
    put_file(tree, "etc/resolv.conf", b"", 0o644, time);
    for (path, body, mode) in stock_files() {
        put_file(
            tree,
            &format!("{SINGULARITY_D}/{path}"),
            body.as_bytes(),
            mode,
            time,
        );
    }
    let d = SINGULARITY_D;
    put_file(
        tree,
        &format!("{d}/runscript"),
        meta.runscript.as_bytes(),
        0o755,
        time,
    );
    put_file(
        tree,
        &format!("{d}/env/10-docker2singularity.sh"),
        meta.env_script.as_bytes(),
        0o755,
        time,
    );
    put_file(
        tree,
        &format!("{d}/labels.json"),
        labels_json(&meta.labels).as_bytes(),
        0o644,
        time,
    );
    put_file(
        tree,
        &format!("{d}/Singularity"),
        meta.deffile.as_bytes(),
        0o644,
        time,
    );
    debug_assert!(tree
        .lookup(".singularity.d/runscript")
        .is_some_and(|n| matches!(tree.node_inode(n).kind, Kind::File { .. })));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ep: Option<&[&str]>, cmd: Option<&[&str]>) -> RunConfig {
        let v = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        RunConfig {
            entrypoint: ep.map(v),
            cmd: cmd.map(v),
            ..RunConfig::default()
        }
    }

    #[test]
    fn quoting_follows_apptainer() {
        let r = runscript(&run(None, Some(&["sh"])));
        assert!(r.contains("OCI_CMD='\"sh\"'\n"), "{r}");
        assert!(r.contains("OCI_ENTRYPOINT=''\n"), "{r}");
        assert!(r.contains("\neval \"set ${SINGULARITY_OCI_RUN}\"\n"), "{r}");
        let r = runscript(&run(Some(&["/bin/echo", "it's $HOME \"x\" `y` \\"]), None));
        assert!(
            r.contains(r#"OCI_ENTRYPOINT='"/bin/echo" "it'"'"'s \$HOME \"x\" \`y\` \\"'"#),
            "{r}"
        );
        assert!(
            r.contains(r#"    set -- 'it'"'"'s $HOME "x" `y` \' "$@""#),
            "{r}"
        );
    }

    #[test]
    fn env_script_follows_apptainer() {
        let env: Vec<String> = [
            "PATH=/opt/conda/bin:/usr/bin",
            "LANG=C.UTF-8",
            "EMPTY=",
            "NOVALUE",
            "1BAD=x",
            "WITH-DASH=y",
            "Q=a\"b$c`d\\e=f",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        assert_eq!(
            env_script(&env),
            concat!(
                "#!/bin/sh\n",
                "export PATH=\"/opt/conda/bin:/usr/bin\"\n",
                "export LANG=\"${LANG:-\"C.UTF-8\"}\"\n",
                "export EMPTY=\"${EMPTY:-\"\"}\"\n",
                "export NOVALUE=\"${NOVALUE:-}\"\n",
                "export Q=\"${Q:-\"a\\\"b\\$c\\`d\\\\e=f\"}\"\n",
            )
        );
    }

    #[test]
    fn labels_are_sorted_tab_indented_without_newline() {
        let labels = BTreeMap::from([
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ]);
        assert_eq!(
            labels_json(&labels),
            "{\n\t\"a\": \"1\",\n\t\"b\": \"2\"\n}"
        );
    }

    /// Runs the generated runscript with `sh` (the eval path and the no-eval path).
    #[test]
    fn runscript_runs_docker_semantics() {
        if !crate::sif::have_tool("sh") {
            return;
        }
        let cases: Vec<(RunConfig, Vec<&str>, &str)> = vec![
            (
                run(Some(&["echo", "ep"]), Some(&["c1", "c 2"])),
                vec![],
                "ep c1 c 2",
            ),
            (
                run(Some(&["echo", "ep"]), Some(&["c1"])),
                vec!["a b", "z"],
                "ep a b z",
            ),
            (run(None, Some(&["echo", "cmd"])), vec![], "cmd"),
            (
                run(None, Some(&["echo", "cmd"])),
                vec!["echo", "args"],
                "args",
            ),
            (run(Some(&["echo", "it's"]), None), vec![], "it's"),
        ];
        for (cfg, args, expected) in cases {
            let script = runscript(&cfg);
            for no_eval in ["", "1"] {
                let out = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(&script)
                    .arg("runscript")
                    .args(&args)
                    .env("SINGULARITY_NO_EVAL", no_eval)
                    .output()
                    .unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout).trim(),
                    expected,
                    "no_eval={no_eval:?} {args:?}\n{script}"
                );
            }
        }
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(runscript(&RunConfig::default()))
            .output()
            .unwrap();
        assert!(!out.status.success());
    }

    #[test]
    fn additions_land_in_the_tree() {
        let mut tree = Tree::new(5);
        let etc = tree.insert(ROOT, b"etc", Inode::dir(0o755, 1));
        tree.insert(
            etc,
            b"hosts",
            Inode::inline_file(b"127.0.0.1 x".to_vec(), 0o600, 1),
        );
        tree.insert(
            ROOT,
            b"singularity",
            Inode::inline_file(b"old".to_vec(), 0o644, 1),
        );
        let meta = Metadata::new(
            &run(None, Some(&["sh"])),
            BTreeMap::from([("k".to_string(), "v".to_string())]),
            "bootstrap: docker-daemon\nfrom: x\n\n".into(),
        );
        add_to_tree(&mut tree, &meta, 42);
        let inode = |p: &str| tree.node_inode(tree.lookup(p).unwrap()).clone();
        assert_eq!(
            inode("etc/hosts").kind,
            Kind::File {
                size: 0,
                data: super::super::tree::Data::Inline(Vec::new())
            }
        );
        assert_eq!(inode("etc/hosts").mode, 0o644);
        assert_eq!(
            inode("singularity").kind,
            Kind::Symlink(b".singularity.d/runscript".to_vec())
        );
        for p in [
            "dev",
            "proc",
            "sys",
            "tmp",
            "home",
            "root",
            "var/tmp",
            ".singularity.d/libs",
        ] {
            assert!(inode(p).is_dir(), "{p}");
        }
        for p in [
            "actions/exec",
            "actions/run",
            "actions/shell",
            "actions/start",
            "actions/test",
            "runscript",
            "startscript",
            "env/99-base.sh",
        ] {
            assert_eq!(inode(&format!(".singularity.d/{p}")).mode, 0o755, "{p}");
        }
        assert_eq!(inode(".singularity.d/labels.json").mode, 0o644);
        assert_eq!(inode(".singularity.d/runscript").mtime, 42);
        let json: serde_json::Value = serde_json::from_slice(&meta.inspect_json()).unwrap();
        assert_eq!(json["data"]["attributes"]["labels"]["k"], "v");
        assert!(json["data"]["attributes"]["environment"][DOCKER_ENV_SCRIPT].is_string());
    }
}
