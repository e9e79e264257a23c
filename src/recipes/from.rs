//! The images a Dockerfile is built from, read from its text: each `FROM` image and each
//! `COPY --from=` image, build-stage names and references to stages left out.

/// The images `dockerfile` is built from, in order of first use, each once: the image of
/// every `FROM` that does not name an earlier build stage, and of every `COPY --from=` that
/// names neither a stage nor a stage index. Instructions are case-insensitive, comments and
/// line continuations are understood, `--platform=` and other flags are skipped.
#[must_use]
pub fn from_images(dockerfile: &str) -> Vec<String> {
    let mut stages: Vec<String> = Vec::new();
    let mut images: Vec<String> = Vec::new();
    let add = |image: &str, images: &mut Vec<String>| {
        if !images.iter().any(|i| i == image) {
            images.push(image.to_owned());
        }
    };
    for line in logical_lines(dockerfile) {
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next() else {
            continue;
        };
        let args: Vec<&str> = words.collect();
        if instruction.eq_ignore_ascii_case("FROM") {
            let mut rest = args.iter().copied().skip_while(|w| w.starts_with("--"));
            let Some(image) = rest.next() else { continue };
            if !stages.iter().any(|s| s.eq_ignore_ascii_case(image)) {
                add(image, &mut images);
            }
            if let (Some(kw), Some(name)) = (rest.next(), rest.next()) {
                if kw.eq_ignore_ascii_case("AS") {
                    stages.push(name.to_owned());
                }
            }
        } else if instruction.eq_ignore_ascii_case("COPY") {
            for flag in args.iter().take_while(|w| w.starts_with("--")) {
                let Some(from) = flag.strip_prefix("--from=") else {
                    continue;
                };
                let is_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(from))
                    || from.bytes().all(|b| b.is_ascii_digit());
                if !is_stage {
                    add(from, &mut images);
                }
            }
        }
    }
    images
}

/// The instructions of a Dockerfile, one string each: comment lines dropped, lines ending
/// in `\` joined with the next.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                if !current.trim().is_empty() {
                    out.push(std::mem::take(&mut current));
                }
                current.clear();
            }
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("one FROM", "FROM a:1\nRUN x\n", &["a:1"]),
            (
                "a build stage and a reference to it",
                "FROM miniconda:latest AS build\nRUN x\nFROM debian:slim\nCOPY --from=build /a /a\n",
                &["miniconda:latest", "debian:slim"],
            ),
            (
                "FROM a stage is no image",
                "FROM k:base as env\nFROM env\nRUN y\n",
                &["k:base"],
            ),
            (
                "lowercase instructions, flags, continuation, comments",
                "# FROM not:this\nfrom --platform=linux/amd64 \\\n  k:x AS Build\nfrom build\n",
                &["k:x"],
            ),
            (
                "COPY --from an image, a stage index, --chown",
                "FROM a:1 AS s\nFROM b:2\nCOPY --chown=1:1 --from=c:3 /x /x\nCOPY --from=0 /y /y\nCOPY --from=s /z /z\n",
                &["a:1", "b:2", "c:3"],
            ),
            (
                "each image once",
                "FROM a:1 AS one\nFROM a:1 AS two\n",
                &["a:1"],
            ),
            ("no FROM", "RUN x\n", &[]),
        ];
        for (name, text, want) in cases {
            assert_eq!(from_images(text), *want, "{name}");
        }
    }
}
