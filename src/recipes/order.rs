//! The dependency order of recipes, derived from their `FROM` images.

use std::collections::BTreeMap;

use super::{ImageRecipe, RecipeError};
use crate::names::split_image;

/// A reference as Docker resolves it: no default-registry prefix, `:latest` when untagged.
fn normalise(reference: &str) -> String {
    let r = reference
        .strip_prefix("docker.io/library/")
        .or_else(|| reference.strip_prefix("docker.io/"))
        .unwrap_or(reference);
    match split_image(r) {
        (_, Some(_)) => r.to_owned(),
        (repo, None) if !r.contains('@') => format!("{repo}:latest"),
        _ => r.to_owned(),
    }
}

/// Whether the `FROM` image `from` is one of `recipes`' images (as Docker resolves names).
#[must_use]
pub fn is_recipe_image(recipes: &[ImageRecipe], from: &str) -> bool {
    let wanted = normalise(from);
    recipes.iter().any(|r| normalise(&r.image) == wanted)
}

/// For each recipe, the indices of the recipes it is built from. A `FROM` image in a
/// repository of ours (the repository of any recipe's image) that has no recipe is an error
/// naming both; an image of any other repository is external (pulled).
pub(crate) fn dependencies(recipes: &[ImageRecipe]) -> Result<Vec<Vec<usize>>, RecipeError> {
    let by_image: BTreeMap<String, usize> = recipes
        .iter()
        .enumerate()
        .map(|(i, r)| (normalise(&r.image), i))
        .collect();
    let ours: Vec<&str> = recipes.iter().map(|r| split_image(&r.image).0).collect();
    let mut deps = Vec::with_capacity(recipes.len());
    for recipe in recipes {
        let mut mine = Vec::new();
        for from in &recipe.from {
            let reference = normalise(from);
            if let Some(&i) = by_image.get(&reference) {
                if !mine.contains(&i) {
                    mine.push(i);
                }
            } else {
                let repository = split_image(&reference).0;
                if ours.contains(&repository) {
                    return Err(RecipeError::MissingRecipe {
                        image: recipe.image.clone(),
                        from: from.clone(),
                        repository: repository.to_owned(),
                    });
                }
            }
        }
        deps.push(mine);
    }
    Ok(deps)
}

/// Orders `count` nodes so each comes after its `deps`, keeping the given order wherever
/// the dependencies allow (deterministic). A cycle is returned as the nodes on it.
pub(crate) fn topological(deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let count = deps.len();
    let mut placed = vec![false; count];
    let mut order = Vec::with_capacity(count);
    while order.len() < count {
        let next = (0..count).find(|&i| !placed[i] && deps[i].iter().all(|&d| placed[d]));
        match next {
            Some(i) => {
                placed[i] = true;
                order.push(i);
            }
            None => return Err(find_cycle(deps, &placed)),
        }
    }
    Ok(order)
}

/// A cycle among the nodes not placed: follow unplaced dependencies until one repeats.
fn find_cycle(deps: &[Vec<usize>], placed: &[bool]) -> Vec<usize> {
    let Some(start) = (0..deps.len()).find(|&i| !placed[i]) else {
        return Vec::new();
    };
    let mut path = vec![start];
    let mut node = start;
    loop {
        // Every unplaced node waits for at least one unplaced dependency.
        let Some(&next) = deps[node].iter().find(|&&d| !placed[d]) else {
            return path;
        };
        if let Some(pos) = path.iter().position(|&p| p == next) {
            return path.split_off(pos);
        }
        path.push(next);
        node = next;
    }
}

/// `recipes` ordered so every image comes after the images it is built from (its `FROM`
/// images that are recipes here), otherwise in the given order. A cycle, or a `FROM` image
/// of ours without a recipe, is an error naming the images.
pub fn build_order(recipes: &[ImageRecipe]) -> Result<Vec<&ImageRecipe>, RecipeError> {
    let deps = dependencies(recipes)?;
    match topological(&deps) {
        Ok(order) => Ok(order.into_iter().map(|i| &recipes[i]).collect()),
        Err(cycle) => Err(RecipeError::Cycle {
            cycle: cycle_text(cycle.iter().map(|&i| recipes[i].image.as_str())),
        }),
    }
}

/// `` `a` → `b` → `a` ``.
pub(crate) fn cycle_text<'a>(nodes: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = nodes.map(|n| format!("`{n}`")).collect();
    let first = names.first().cloned().unwrap_or_default();
    let mut text = names.join(" → ");
    text.push_str(" → ");
    text.push_str(&first);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::Variant;
    use crate::recipes::RecipeKind;

    fn recipe(image: &str, from: &[&str]) -> ImageRecipe {
        ImageRecipe {
            image: image.to_owned(),
            kind: RecipeKind::Base,
            variant: Variant::Full,
            file_name: String::new(),
            text: String::new(),
            hash: String::new(),
            from: from.iter().map(|s| (*s).to_owned()).collect(),
            context: Vec::new(),
            models: Vec::new(),
            test_models: Vec::new(),
        }
    }

    fn images<'a>(order: &[&'a ImageRecipe]) -> Vec<&'a str> {
        order.iter().map(|r| r.image.as_str()).collect()
    }

    #[test]
    fn each_image_after_what_it_is_built_from() {
        let recipes = [
            recipe("k/d:env-slim", &["k/d:env", "debian:slim"]),
            recipe("k/d:own", &["k/d:base"]),
            recipe("k/d:env", &["docker.io/k/d:base"]),
            recipe("k/d:base", &["continuumio/miniconda3"]),
            recipe("k/d:own-slim", &["continuumio/miniconda3:latest", "debian"]),
        ];
        let order = build_order(&recipes).unwrap();
        assert_eq!(
            images(&order),
            [
                "k/d:base",
                "k/d:own",
                "k/d:env",
                "k/d:env-slim",
                "k/d:own-slim"
            ]
        );
    }

    #[test]
    fn a_cycle_is_named() {
        let recipes = [
            recipe("k/d:a", &["k/d:b"]),
            recipe("k/d:b", &["k/d:c"]),
            recipe("k/d:c", &["k/d:a"]),
            recipe("k/d:free", &[]),
        ];
        let err = build_order(&recipes).unwrap_err().to_string();
        assert!(
            err.contains("`k/d:a` → `k/d:b` → `k/d:c` → `k/d:a`"),
            "{err}"
        );
        let own = [recipe("k/d:self", &["k/d:self"])];
        let err = build_order(&own).unwrap_err().to_string();
        assert!(err.contains("`k/d:self` → `k/d:self`"), "{err}");
    }

    #[test]
    fn a_missing_recipe_of_ours_is_named() {
        let recipes = [recipe("k/d:a", &["k/d:gone", "python:3"])];
        let err = build_order(&recipes).unwrap_err().to_string();
        assert!(err.contains("`k/d:a`"), "{err}");
        assert!(err.contains("`k/d:gone`"), "{err}");
        // Other repositories are pulled, not ours to build.
        assert!(build_order(&[recipe("k/d:a", &["python:3"])]).is_ok());
    }
}
