use std::path::{Path, PathBuf};

use super::*;
use crate::index::{parse, DOCKER_TO_MODEL, MODEL_TO_DOCKER};

fn real_index() -> Index {
    Index::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("container-info")).unwrap()
}

/// A small index: `k:shared` runs groups A and B, `k:own` has two keys of group Own,
/// `k:c` one key.
fn small_index() -> Index {
    Index {
        model_to_docker: parse(
            MODEL_TO_DOCKER,
            r#"{"A": "kipoi/kipoi-docker:shared", "B/x": "kipoi/kipoi-docker:shared",
                "Own/one": "kipoi/kipoi-docker:own", "Own/two": "kipoi/kipoi-docker:own",
                "c": "kipoi/kipoi-docker:c"}"#,
        )
        .unwrap(),
        docker_to_model: parse(
            DOCKER_TO_MODEL,
            r#"{"kipoi/kipoi-docker:shared": ["A", "B/x/1", "B/x/2"],
                "kipoi/kipoi-docker:own": ["Own/one", "Own/two"],
                "kipoi/kipoi-docker:c": ["c"]}"#,
        )
        .unwrap(),
        ..Index::default()
    }
}

/// Environment files for [`small_index`]: the base's and `shared.yml`.
fn small_envfiles() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(BASE_ENV_FILE),
        "name: kipoi-env\ndependencies: [python=3.10]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("shared.yml"),
        "name: kipoi-shared-test\ndependencies: [python=3.8]\n",
    )
    .unwrap();
    dir
}

fn opts_with_envfiles(dir: &Path) -> RecipeOptions {
    RecipeOptions {
        envfile_dir: Some(dir.to_path_buf()),
        ..RecipeOptions::default()
    }
}

fn images(recipes: &[ImageRecipe]) -> Vec<&str> {
    recipes.iter().map(|r| r.image.as_str()).collect()
}

#[test]
fn every_image_of_the_real_index_and_its_slim_has_a_recipe() {
    let index = real_index();
    let recipes = recipes_for_index(&index, &RecipeOptions::default()).unwrap();
    assert_eq!(recipes.len(), 1 + 2 * index.docker_to_model.0.len());
    assert_eq!(recipes[0].image, "kipoi/kipoi-docker:kipoi-base-env");
    assert_eq!(recipes[0].kind, RecipeKind::Base);
    assert_eq!(recipes[0].file_name, "Dockerfile.kipoi-base-env");
    for image in index.docker_to_model.0.keys() {
        for name in [image.to_string(), image.slim().to_string()] {
            let r = recipes.iter().find(|r| r.image == name);
            let r = r.unwrap_or_else(|| panic!("no recipe for {name}"));
            assert_eq!(r.hash, crate::docker::recipe_hash(&r.text));
            assert_eq!(r.file_name, format!("Dockerfile.{}", r.tag()));
            assert!(!r.text.contains("{{"), "{name}");
        }
    }
    let shared: Vec<&str> = recipes
        .iter()
        .filter(|r| matches!(r.kind, RecipeKind::SharedEnv { .. }))
        .map(|r| r.image.as_str())
        .collect();
    let expected: Vec<String> = index
        .shared_images()
        .iter()
        .flat_map(|i| [i.to_string(), i.slim().to_string()])
        .collect();
    assert_eq!(shared, expected);
    assert_eq!(shared.len(), 6);
}

#[test]
fn the_real_shared_images_come_from_their_environment_files() {
    let index = real_index();
    let opts = RecipeOptions::default();
    let full = recipe_for_image(&index, "kipoi/kipoi-docker:sharedpy3keras2tf1", &opts).unwrap();
    assert_eq!(
        full.kind,
        RecipeKind::SharedEnv {
            env: "sharedpy3keras2tf1".into()
        }
    );
    assert_eq!(full.from, ["kipoi/kipoi-docker:kipoi-base-env"]);
    assert_eq!(full.context.len(), 1);
    assert_eq!(full.context[0].0, "envfiles/sharedpy3keras2tf1.yml");
    let env = String::from_utf8(full.context[0].1.clone()).unwrap();
    assert!(env.contains("tensorflow==1.15.0") && env.contains("keras==2.1.6"));
    assert!(full
        .text
        .contains("conda env create -f /app/sharedpy3keras2tf1.yml"));
    assert!(
        full.text.contains(&crate::docker::recipe_hash(&env)),
        "the text names the env file's sha256"
    );
    // One model per group is what a release tests in a shared image.
    let groups: Vec<&str> = full.test_models.iter().map(|m| top_group(m)).collect();
    let mut unique = groups.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(groups.len(), unique.len());
    assert_eq!(full.models.len(), 1383);

    let slim =
        recipe_for_image(&index, "kipoi/kipoi-docker:sharedpy3keras2tf1-slim", &opts).unwrap();
    assert_eq!(slim.variant, Variant::Slim);
    assert_eq!(
        slim.from,
        [
            "kipoi/kipoi-docker:sharedpy3keras2tf1",
            "debian:bullseye-slim"
        ]
    );
    assert!(slim.context.is_empty());
    assert_eq!(slim.models, full.models);
}

#[test]
fn own_images_use_the_group_templates_for_the_keys_common_prefix() {
    let index = real_index();
    let opts = RecipeOptions::default();
    let r = recipe_for_image(&index, "kipoi/kipoi-docker:mmsplice", &opts).unwrap();
    assert_eq!(
        r.kind,
        RecipeKind::Group {
            group: "MMSplice".into()
        }
    );
    assert_eq!(
        r.text,
        dockerfile::render("MMSplice", Variant::Full, &opts.render)
            .unwrap()
            .text
    );
    let r = recipe_for_image(&index, "kipoi/kipoi-docker:mmsplice-mtsplice-slim", &opts).unwrap();
    assert_eq!(
        r.kind,
        RecipeKind::Group {
            group: "MMSplice/mtsplice".into()
        }
    );
    assert_eq!(r.models, ["MMSplice/mtsplice"]);
    assert_eq!(
        r.from,
        ["continuumio/miniconda3:latest", "debian:bullseye-slim"]
    );
    let r = recipe_for_image(&index, "kipoi/kipoi-docker:deepmel", &opts).unwrap();
    assert_eq!(r.test_models, r.models);
    assert_eq!(r.models.len(), 3);
}

#[test]
fn the_base_comes_first_and_every_image_after_what_it_is_built_from() {
    let index = real_index();
    let recipes = recipes_for_index(&index, &RecipeOptions::default()).unwrap();
    let order = build_order(&recipes).unwrap();
    assert_eq!(order.len(), recipes.len());
    assert_eq!(order[0].kind, RecipeKind::Base);
    let position = |image: &str| order.iter().position(|r| r.image == image);
    for (i, r) in order.iter().enumerate() {
        for from in &r.from {
            if let Some(p) = position(from) {
                assert!(p < i, "{} comes before {from}", r.image);
            }
        }
    }
    assert!(
        position("kipoi/kipoi-docker:sharedpy3keras1.2").unwrap()
            < position("kipoi/kipoi-docker:sharedpy3keras1.2-slim").unwrap()
    );
}

#[test]
fn a_group_template_over_a_shared_image_is_refused() {
    let index = real_index();
    let opts = RecipeOptions::default();
    for image in [
        "kipoi/kipoi-docker:sharedpy3keras2tf2",
        "kipoi/kipoi-docker:sharedpy3keras2tf2-slim",
    ] {
        let err = group_recipe(&index, "Basset", image, &opts).unwrap_err();
        assert!(matches!(err, RecipeError::SharedImage { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("`{image}` is a shared image")),
            "{msg}"
        );
        assert!(msg.contains("`Basset`") && msg.contains("`HAL`"), "{msg}");
        let dir = tempfile::tempdir().unwrap();
        assert!(write_group_recipe(&index, dir.path(), "Basset", image, &opts).is_err());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing written"
        );
    }
    // Own images and images new to the index render from the group templates.
    let own = group_recipe(&index, "DeepMEL", "kipoi/kipoi-docker:deepmel", &opts).unwrap();
    assert!(own.text.contains("kipoi env create DeepMEL"));
    let new = group_recipe(
        &index,
        "NewGroup",
        "kipoi/kipoi-docker:newgroup-slim",
        &opts,
    )
    .unwrap();
    assert_eq!(new.variant, Variant::Slim);
    assert!(new.models.is_empty());
}

#[test]
fn the_recipe_for_an_update_comes_from_the_index() {
    let index = real_index();
    let opts = RecipeOptions::default();
    // A shared image gets its environment recipe whatever group asks.
    let r = recipe_for_update(
        &index,
        "kipoi/kipoi-docker:sharedpy3keras1.2",
        Some("CpGenie"),
        &opts,
    )
    .unwrap();
    assert!(matches!(r.kind, RecipeKind::SharedEnv { .. }));
    // An own image: the index's group.
    let r = recipe_for_update(
        &index,
        "kipoi/kipoi-docker:mmsplice",
        Some("MMSplice/deltaLogitPSI"),
        &opts,
    )
    .unwrap();
    assert_eq!(r.kind.subject(), Some("MMSplice"));
    // A new image: the caller's group.
    let r = recipe_for_update(
        &index,
        "kipoi/kipoi-docker:brandnew",
        Some("BrandNew"),
        &opts,
    )
    .unwrap();
    assert_eq!(r.kind.subject(), Some("BrandNew"));
    let err = recipe_for_update(&index, "kipoi/kipoi-docker:brandnew", None, &opts).unwrap_err();
    assert!(matches!(err, RecipeError::NotInIndex { .. }), "{err}");
    assert!(
        err.to_string().contains("`kipoi/kipoi-docker:brandnew`"),
        "{err}"
    );
}

#[test]
fn which_kind_comes_from_the_index_not_the_name() {
    // An image called `shared…` that serves one group is that group's own image; an image
    // with any name that serves two groups is shared and needs an environment file.
    let index = Index {
        model_to_docker: parse(
            MODEL_TO_DOCKER,
            r#"{"G": "kipoi/kipoi-docker:sharedpy3keras2tf1", "A": "kipoi/kipoi-docker:plain", "B": "kipoi/kipoi-docker:plain"}"#,
        )
        .unwrap(),
        docker_to_model: parse(
            DOCKER_TO_MODEL,
            r#"{"kipoi/kipoi-docker:sharedpy3keras2tf1": ["G"], "kipoi/kipoi-docker:plain": ["A", "B"]}"#,
        )
        .unwrap(),
        ..Index::default()
    };
    let opts = RecipeOptions::default();
    let r = recipe_for_image(&index, "kipoi/kipoi-docker:sharedpy3keras2tf1", &opts).unwrap();
    assert_eq!(r.kind.subject(), Some("G"));
    assert!(matches!(r.kind, RecipeKind::Group { .. }));
    let err = recipe_for_image(&index, "kipoi/kipoi-docker:plain", &opts).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`kipoi/kipoi-docker:plain`") && msg.contains("`plain.yml`"),
        "{msg}"
    );
    let report = check(&index, &opts);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("`envfiles/sharedpy3keras2tf1.yml`")
                && p.contains("serves no image")
                && p.contains("not a shared image")),
        "{:?}",
        report.problems
    );
    assert!(report
        .problems
        .iter()
        .any(|p| p.contains("`kipoi/kipoi-docker:plain-slim` has no recipe")));
}

#[test]
fn check_passes_on_the_real_index() {
    let index = real_index();
    let report = check(&index, &RecipeOptions::default());
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.lines.len(), 1 + 2 * index.docker_to_model.0.len());
    let base = &report.lines[0];
    assert_eq!(base.kind, RecipeKind::Base);
    // Every own full image and every shared full image is built FROM the base.
    assert_eq!(base.dependents.len(), index.docker_to_model.0.len());
    let deepmel = report
        .lines
        .iter()
        .find(|l| l.image == "kipoi/kipoi-docker:deepmel")
        .unwrap();
    assert_eq!(deepmel.keys, ["DeepMEL"]);
    assert_eq!(deepmel.models, 3);
}

#[test]
fn check_names_missing_and_unused_environment_files() {
    let index = small_index();
    let dir = small_envfiles();
    let opts = opts_with_envfiles(dir.path());
    assert!(
        check(&index, &opts).is_ok(),
        "{:?}",
        check(&index, &opts).problems
    );

    std::fs::rename(dir.path().join("shared.yml"), dir.path().join("other.yml")).unwrap();
    let report = check(&index, &opts);
    let text = report.problems.join("\n");
    assert!(
        text.contains("`kipoi/kipoi-docker:shared` has no recipe"),
        "{text}"
    );
    assert!(
        text.contains("`kipoi/kipoi-docker:shared-slim` has no recipe"),
        "{text}"
    );
    assert!(text.contains("expected `shared.yml`"), "{text}");
    assert!(
        text.contains("`envfiles/other.yml`") && text.contains("serves no image"),
        "{text}"
    );
    let err = recipes_for_index(&index, &opts).unwrap_err();
    assert!(matches!(err, RecipeError::MissingEnvFile { .. }), "{err}");

    std::fs::remove_file(dir.path().join(BASE_ENV_FILE)).unwrap();
    let text = check(&index, &opts).problems.join("\n");
    assert!(
        text.contains("`kipoi/kipoi-docker:kipoi-base-env`"),
        "{text}"
    );
    assert!(text.contains("`kipoi-env.yml`"), "{text}");
}

#[test]
fn the_base_environment_must_be_kipoi_env() {
    let dir = small_envfiles();
    std::fs::write(dir.path().join(BASE_ENV_FILE), "name: other\n").unwrap();
    let err = recipes_for_index(&small_index(), &opts_with_envfiles(dir.path())).unwrap_err();
    assert!(matches!(err, RecipeError::BaseEnvName { .. }), "{err}");
}

#[test]
fn a_changed_environment_file_changes_the_full_and_the_slim_hash() {
    let index = small_index();
    let dir = small_envfiles();
    let opts = opts_with_envfiles(dir.path());
    let before = recipes_for_index(&index, &opts).unwrap();
    std::fs::write(
        dir.path().join("shared.yml"),
        "name: kipoi-shared-test\ndependencies: [python=3.9]\n",
    )
    .unwrap();
    let after = recipes_for_index(&index, &opts).unwrap();
    for (b, a) in before.iter().zip(&after) {
        let changed = b.hash != a.hash;
        let shared = matches!(b.kind, RecipeKind::SharedEnv { .. });
        assert_eq!(changed, shared, "{}", b.image);
    }
}

#[test]
fn templates_and_envfiles_can_be_overridden() {
    let index = small_index();
    let envfiles = small_envfiles();
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(
        templates.path().join(dockerfile::FULL_TEMPLATE),
        "FROM {{base_image}}\nRUN echo {{model_group}}\n",
    )
    .unwrap();
    std::fs::write(
        templates.path().join(dockerfile::SLIM_TEMPLATE),
        "FROM {{base_image}}\nRUN echo slim {{model_group}}\n",
    )
    .unwrap();
    std::fs::write(
        templates.path().join(dockerfile::ENV_TEMPLATE),
        "FROM {{base_image}}\nCOPY envfiles/{{env_file}} /x\nRUN echo {{env_name}}\n",
    )
    .unwrap();
    let opts = RecipeOptions {
        render: RenderOptions {
            template_dir: Some(templates.path().to_path_buf()),
            base_image: "kipoi-test-base:1".into(),
            ..RenderOptions::default()
        },
        envfile_dir: Some(envfiles.path().to_path_buf()),
    };
    let recipes = recipes_for_index(&index, &opts).unwrap();
    assert_eq!(recipes[0].image, "kipoi-test-base:1");
    assert_eq!(recipes[0].file_name, "Dockerfile.1");
    let by = |image: &str| recipes.iter().find(|r| r.image == image).unwrap();
    assert_eq!(
        by("kipoi/kipoi-docker:own").text,
        "FROM kipoi-test-base:1\nRUN echo Own\n"
    );
    assert_eq!(
        by("kipoi/kipoi-docker:shared").text,
        "FROM kipoi-test-base:1\nCOPY envfiles/shared.yml /x\nRUN echo kipoi-shared-test\n"
    );
    // No slim environment template in the directory: the compiled-in one.
    assert!(by("kipoi/kipoi-docker:shared-slim").text.starts_with(
        "# Rendered by kipoi_containers from dockerfiles/Dockerfile-env-slim.template"
    ));
    let order = build_order(&recipes).unwrap();
    assert_eq!(order[0].image, "kipoi-test-base:1");
    // A directory without the group templates is an error naming the file.
    std::fs::remove_file(templates.path().join(dockerfile::FULL_TEMPLATE)).unwrap();
    let err = recipes_for_index(&index, &opts).unwrap_err();
    let msg = crate::errchain::chain(&err);
    assert!(msg.contains("Dockerfile.template"), "{msg}");
}

#[test]
fn a_cycle_and_a_missing_recipe_of_ours_are_reported() {
    // Group names that are their tags, so a template can name another image by group.
    let index = Index {
        model_to_docker: parse(
            MODEL_TO_DOCKER,
            r#"{"own": "kipoi/kipoi-docker:own", "c": "kipoi/kipoi-docker:c"}"#,
        )
        .unwrap(),
        docker_to_model: parse(
            DOCKER_TO_MODEL,
            r#"{"kipoi/kipoi-docker:own": ["own"], "kipoi/kipoi-docker:c": ["c"]}"#,
        )
        .unwrap(),
        ..Index::default()
    };
    let envfiles = small_envfiles();
    let templates = tempfile::tempdir().unwrap();
    let write = |full: &str, slim: &str| {
        std::fs::write(templates.path().join(dockerfile::FULL_TEMPLATE), full).unwrap();
        std::fs::write(templates.path().join(dockerfile::SLIM_TEMPLATE), slim).unwrap();
    };
    let opts = RecipeOptions {
        render: RenderOptions {
            template_dir: Some(templates.path().to_path_buf()),
            ..RenderOptions::default()
        },
        envfile_dir: Some(envfiles.path().to_path_buf()),
    };
    // `c` is built from `c-slim`, which is built from `c`.
    write(
        "FROM kipoi/kipoi-docker:{{model_group}}-slim\n",
        "FROM kipoi/kipoi-docker:{{model_group}}\n",
    );
    let recipes = recipes_for_index(&index, &opts).unwrap();
    let err = build_order(&recipes).unwrap_err().to_string();
    assert!(
        err.contains("cycle")
            && err.contains("`kipoi/kipoi-docker:own` → `kipoi/kipoi-docker:own-slim` → `kipoi/kipoi-docker:own`"),
        "{err}"
    );
    let report = check(&index, &opts);
    assert!(
        report.problems.iter().any(|p| p.contains("cycle")),
        "{:?}",
        report.problems
    );
    let err = matrix(&index, MatrixKind::Release, &opts).unwrap_err();
    assert!(matches!(err, RecipeError::Cycle { .. }), "{err}");

    // A FROM of our repository with no recipe.
    write(
        "FROM kipoi/kipoi-docker:gone\n",
        "FROM debian:bullseye-slim\n",
    );
    let recipes = recipes_for_index(&index, &opts).unwrap();
    let err = build_order(&recipes).unwrap_err().to_string();
    assert!(err.contains("`kipoi/kipoi-docker:gone`"), "{err}");
    assert!(
        err.contains("`kipoi/kipoi-docker:own` is built from `kipoi/kipoi-docker:gone`"),
        "{err}"
    );
    assert!(!check(&index, &opts).is_ok());
}

#[test]
fn recipes_are_written_as_a_build_context() {
    let index = small_index();
    let envfiles = small_envfiles();
    let recipes = recipes_for_index(&index, &opts_with_envfiles(envfiles.path())).unwrap();
    let out = tempfile::tempdir().unwrap();
    let written = write_recipes(out.path(), &recipes).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.strip_prefix(out.path()).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "Dockerfile.c",
            "Dockerfile.c-slim",
            "Dockerfile.kipoi-base-env",
            "Dockerfile.own",
            "Dockerfile.own-slim",
            "Dockerfile.shared",
            "Dockerfile.shared-slim",
            "envfiles/kipoi-env.yml",
            "envfiles/shared.yml",
        ]
    );
    let text = std::fs::read_to_string(out.path().join("Dockerfile.shared")).unwrap();
    assert_eq!(text, recipes[1].text);
    assert_eq!(
        std::fs::read(out.path().join("envfiles/shared.yml")).unwrap(),
        std::fs::read(envfiles.path().join("shared.yml")).unwrap()
    );
}

#[test]
fn matrices_list_every_image_of_the_real_index() {
    let index = real_index();
    let opts = RecipeOptions::default();
    let images: Vec<String> = index
        .docker_to_model
        .0
        .keys()
        .map(ToString::to_string)
        .collect();

    let test = matrix(&index, MatrixKind::Test, &opts).unwrap();
    assert_eq!(
        test.include
            .iter()
            .map(|e| e.image.clone())
            .collect::<Vec<_>>(),
        images
    );
    for e in &test.include {
        let models = index.models_for_image(&e.image).unwrap();
        if index.is_shared(&e.image) {
            assert_eq!(e.kind, "shared-env");
            assert_eq!(e.models, one_model_per_modelgroup(models));
            assert!(e.models.len() < models.len());
        } else {
            assert_eq!(e.models.len(), models.len());
        }
        assert_eq!(e.slim.as_deref(), Some(slim_image(&e.image).as_str()));
        let key = index.keys_for_image(&e.image)[0];
        assert_eq!(
            e.sif.as_deref(),
            Some(index.model_to_singularity.0[key].name.as_str())
        );
    }

    let sing = matrix(&index, MatrixKind::Singularity, &opts).unwrap();
    assert_eq!(sing.include.len(), images.len());
    assert!(sing
        .include
        .iter()
        .all(|e| is_slim(&e.image) && e.tag.ends_with("-slim")));

    let release = matrix(&index, MatrixKind::Release, &opts).unwrap();
    let first = &release.include[0];
    assert_eq!(first.image, "kipoi/kipoi-docker:kipoi-base-env");
    assert_eq!((first.kind, first.level), ("base", Some(0)));
    assert_eq!(first.depends_on.as_deref(), Some(&[][..]));
    assert_eq!(release.include.len(), 1 + images.len());
    for e in &release.include[1..] {
        assert_eq!(e.level, Some(1), "{}", e.image);
        assert_eq!(
            e.depends_on.as_deref(),
            Some(&["kipoi/kipoi-docker:kipoi-base-env".to_owned()][..])
        );
        assert!(images.contains(&e.image));
    }
    assert_eq!(release.at_level(0).include.len(), 1);
    assert_eq!(release.at_level(1).include.len(), images.len());
    assert!(release.deeper_than(1).is_empty());
    let json: serde_json::Value = serde_json::from_str(&release.to_json()).unwrap();
    assert_eq!(json["include"][0]["tag"], "kipoi-base-env");
    assert!(!release.to_json().contains('\n'));
}

#[test]
fn release_levels_follow_the_from_chain() {
    // A template that builds own images FROM the shared image puts them one level deeper.
    let index = small_index();
    let envfiles = small_envfiles();
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(
        templates.path().join(dockerfile::FULL_TEMPLATE),
        "FROM kipoi/kipoi-docker:shared\n",
    )
    .unwrap();
    std::fs::write(
        templates.path().join(dockerfile::SLIM_TEMPLATE),
        "FROM debian:bullseye-slim\n",
    )
    .unwrap();
    let opts = RecipeOptions {
        render: RenderOptions {
            template_dir: Some(PathBuf::from(templates.path())),
            ..RenderOptions::default()
        },
        envfile_dir: Some(envfiles.path().to_path_buf()),
    };
    let release = matrix(&index, MatrixKind::Release, &opts).unwrap();
    let levels: Vec<(&str, usize)> = release
        .include
        .iter()
        .map(|e| (e.tag.as_str(), e.level.unwrap()))
        .collect();
    assert_eq!(
        levels,
        [("kipoi-base-env", 0), ("shared", 1), ("own", 2), ("c", 2)]
    );
    assert_eq!(release.deeper_than(1).len(), 2);
    assert_eq!(
        images(&recipes_for_index(&index, &opts).unwrap())[0],
        "kipoi/kipoi-docker:kipoi-base-env"
    );
}
